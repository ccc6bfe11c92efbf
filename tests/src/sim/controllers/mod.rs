//! The controllers a node's pods depend on, as methods of the
//! [`Kubelet`](crate::sim::kubelet::Kubelet) whose pods they act on:
//! [`endpoints`] (the EndpointSlice controller and the ingress controller
//! with its lag), [`deployment`] (ReplicaSets and rolling updates) and
//! [`drain`] (`kubectl drain`).

pub mod deployment;
pub mod drain;
pub mod endpoints;
