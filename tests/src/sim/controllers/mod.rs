//! The controllers a node's pods depend on, as methods of the
//! [`Kubelet`](crate::sim::kubelet::Kubelet) whose pods they act on:
//! [`endpoints`] (the EndpointSlice controller and the ingress controller
//! with its lag), [`deployment`] (ReplicaSets and rolling updates) and
//! [`drain`] (`kubectl drain`); `target_group` is an external load
//! balancer's view of the endpoints.

pub mod deployment;
pub mod drain;
pub mod endpoints;
pub mod ingress;
pub(crate) mod target_group;
