//! Kubernetes access: the client ([`KubeClient`], kubectl's flags and
//! kubeconfig rules), what a command targets, the RBAC preflight, the
//! session's watches, the trackers that turn watched objects into the
//! engine's Kubernetes facts, a node's context and the proxy-log
//! followers. Every API call names its verb and resource on failure.

pub mod client;
pub mod node_context;
pub mod proxy_logs;
pub mod rbac;
pub mod target;
pub mod timeline;
pub mod watch;

pub use client::{KubeClient, KubeFlags};
