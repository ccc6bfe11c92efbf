//! The facts the engine reasons over and the timelines built from them.

pub mod evidence;
pub mod fact;
pub mod timeline;

pub use evidence::{workload_key, workload_label, Evidence, Observation, WorkloadKey};
pub use fact::{
    AgentGoneFact, ClusterEvent, EndpointFact, Fact, FactSource, HttpPeekFact, NodeChange,
    NodeFact, PodChange, PodFact, ProxyLogFact, ServiceFact, WorkloadRef,
};
pub use timeline::{ClusterTimeline, ExitSeen, PodTimeline, SignalSeen};
