//! The node's data plane, all of it real: pods as network namespaces
//! ([`netns`]) in the cgroups kubelet makes ([`cgroup`]), the backend that
//! answers inside them ([`backend`]), the ingress proxies ([`proxy`]), the
//! load generator that records the ground truth ([`load`]), the agent run
//! beside a scenario ([`agent`]), and the names and cleanup of every host
//! object the lab makes ([`naming`], [`clean`]).

pub mod agent;
pub mod backend;
pub mod cgroup;
pub mod clean;
pub mod load;
pub mod naming;
pub mod netns;
pub mod proxy;
