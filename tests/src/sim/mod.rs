//! What drives the node and the control plane: the [`kubelet`] simulator
//! (pod start, probes, termination with kubelet's timing), the
//! [`controllers`] a node's pods depend on (endpoints and the ingress
//! controller's lag, deployment rollouts, drain), the named [`scenario`]s,
//! the lab's [`timeline`] of what it did, the Kubernetes objects they write
//! ([`k8s`]), the [`report`] of a run, and [`fanout`]: many nodes whose
//! pods are API objects only, for the plugin's fan-out bench.

pub mod controllers;
pub mod fanout;
pub mod k8s;
pub mod kubelet;
pub mod report;
pub mod scenario;
pub mod timeline;
