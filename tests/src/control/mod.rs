//! The simulated control plane: the cluster [`store`] (what etcd holds, with
//! resource versions, watch history and the controllers whose side effects
//! the plugin observes), the fake [`apiserver`] that serves it over real
//! HTTP, and the [`kubeconfig`] that points clients at it.

pub mod apiserver;
pub mod kubeconfig;
pub mod store;
