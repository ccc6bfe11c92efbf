//! The node agents: finding their pods, one link per agent
//! ([`link::AgentConn`]: port-forward, `Subscribe`, `Hello`, then
//! messages both ways), and the session's one subscription per node
//! ([`subscription`]) that later pods widen with `Update`.

pub mod link;
pub mod subscription;

pub use link::{agent_pods, compatible, skew_error, AgentConn, AgentPod, Hello};
