//! The ingress proxies, one module per proxy, each run as its Kubernetes
//! controller runs it and given endpoint changes the way that controller
//! applies them. Today: [`nginx`] (ingress-nginx).

pub mod nginx;
