//! Kubernetes objects as the kubelet and the controllers write them, built
//! from the lab's state with k8s-openapi types so that the fake API server
//! serves the real schema.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStatus, Event, EventSource, Lifecycle, LifecycleHandler, ObjectReference, Pod,
    PodCondition, PodIP, PodSpec, PodStatus, ResourceRequirements, SleepAction,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use std::collections::BTreeMap;

/// What the lab knows about one pod, enough to write its object.
#[derive(Clone, Debug)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub app: String,
    pub revision: String,
    /// The controlling owner (kind, name, uid): a ReplicaSet
    /// `<deployment>-<pod-template-hash>` for a Deployment's pods, so that
    /// clients name the Deployment as on a real cluster.
    pub owner: Option<(String, String, String)>,
    pub node: String,
    pub ip: Option<String>,
    pub grace_seconds: i64,
    pub prestop_seconds: Option<i64>,
    /// An exec preStop hook's command (rendered when no sleep is set).
    pub prestop_exec: Option<Vec<String>>,
    pub memory_limit: Option<u64>,
    pub phase: &'static str,
    pub ready: bool,
    pub container_id: Option<String>,
    pub restart_count: i32,
    pub running: bool,
    /// Last termination: (exit code, signal, reason).
    pub last_terminated: Option<(i32, Option<i32>, String)>,
}

pub fn now() -> Time {
    crate::control::store::now()
}

/// The ingress pod as its controller makes it: `facts` with the
/// controller's labels, container name and image in place of an app's.
pub fn ingress_pod(f: &PodFacts, id: &crate::node::proxy::PodIdentity) -> Pod {
    let mut pod = pod(f);
    let mut labels: BTreeMap<String, String> = id
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert("pod-template-hash".into(), f.revision.clone());
    pod.metadata.labels = Some(labels);
    pod.metadata.generate_name = Some(format!("{}-", id.name_prefix));
    if let Some(c) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.name = id.container.into();
        c.image = Some(id.image.into());
        c.ports = Some(vec![ContainerPort {
            container_port: 80,
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]);
    }
    if let Some(cs) = pod
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
        .and_then(|c| c.first_mut())
    {
        cs.name = id.container.into();
        cs.image = id.image.into();
    }
    pod
}

/// The Pod object for these facts.
pub fn pod(f: &PodFacts) -> Pod {
    let labels: BTreeMap<String, String> = [
        ("app".to_string(), f.app.clone()),
        ("pod-template-hash".to_string(), f.revision.clone()),
    ]
    .into();
    let ready_status = if f.ready { "True" } else { "False" };
    let cond = |t: &str, s: &str| PodCondition {
        type_: t.into(),
        status: s.into(),
        last_transition_time: Some(now()),
        ..Default::default()
    };
    let state = if f.running {
        Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..Default::default()
        })
    } else {
        None
    };
    let last_state = f
        .last_terminated
        .as_ref()
        .map(|(code, signal, reason)| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *code,
                signal: *signal,
                reason: Some(reason.clone()),
                finished_at: Some(now()),
                ..Default::default()
            }),
            ..Default::default()
        });
    Pod {
        metadata: ObjectMeta {
            name: Some(f.name.clone()),
            namespace: Some(f.namespace.clone()),
            uid: Some(f.uid.clone()),
            labels: Some(labels),
            generate_name: Some(format!("{}-{}-", f.app, f.revision)),
            owner_references: f.owner.as_ref().map(|(kind, name, uid)| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: kind.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(f.node.clone()),
            termination_grace_period_seconds: Some(f.grace_seconds),
            containers: vec![Container {
                name: f.app.clone(),
                image: Some("fivexx-lab/backend:latest".into()),
                ports: Some(vec![ContainerPort {
                    container_port: crate::node::naming::BACKEND_PORT as i32,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                lifecycle: prestop_handler(f).map(|h| Lifecycle {
                    pre_stop: Some(h),
                    ..Default::default()
                }),
                resources: f.memory_limit.map(|m| ResourceRequirements {
                    limits: Some([("memory".to_string(), Quantity(m.to_string()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(f.phase.into()),
            host_ip: Some("127.0.0.1".into()),
            pod_ip: f.ip.clone(),
            pod_ips: f.ip.clone().map(|ip| vec![PodIP { ip }]),
            conditions: Some(vec![
                cond("PodScheduled", "True"),
                cond("Initialized", "True"),
                cond("ContainersReady", ready_status),
                cond("Ready", ready_status),
            ]),
            container_statuses: f.container_id.as_ref().map(|id| {
                vec![ContainerStatus {
                    name: f.app.clone(),
                    container_id: Some(format!("containerd://{id}")),
                    image: "fivexx-lab/backend:latest".into(),
                    image_id: "fivexx-lab/backend@sha256:0".into(),
                    ready: f.ready,
                    started: Some(f.running),
                    restart_count: f.restart_count,
                    state: state.clone(),
                    last_state: last_state.clone(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

/// One endpoint of an EndpointSlice: a pod address with its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointEntry {
    pub ip: String,
    pub pod: String,
    pub uid: String,
    pub node: String,
    pub ready: bool,
    pub terminating: bool,
}

/// The Service's EndpointSlice, as the EndpointSlice controller writes it.
/// The Service the Deployment's pods back, selecting them by `app`. The
/// lab's ingress routes to the pods directly, as ingress-nginx does; the
/// cluster IP is what a client inside the cluster would connect to.
pub fn service(
    namespace: &str,
    name: &str,
    app: &str,
    cluster_ip: &str,
) -> k8s_openapi::api::core::v1::Service {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            selector: Some([("app".to_string(), app.to_string())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                        crate::node::naming::BACKEND_PORT as i32,
                    ),
                ),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn endpoint_slice(namespace: &str, service: &str, entries: &[EndpointEntry]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-lab01")),
            namespace: Some(namespace.into()),
            labels: Some(
                [
                    (
                        "kubernetes.io/service-name".to_string(),
                        service.to_string(),
                    ),
                    (
                        "endpointslice.kubernetes.io/managed-by".to_string(),
                        "endpointslice-controller.k8s.io".to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(
            entries
                .iter()
                .map(|e| Endpoint {
                    addresses: vec![e.ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(e.ready && !e.terminating),
                        serving: Some(e.ready),
                        terminating: Some(e.terminating),
                    }),
                    node_name: Some(e.node.clone()),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some(e.pod.clone()),
                        namespace: Some(namespace.into()),
                        uid: Some(e.uid.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(crate::node::naming::BACKEND_PORT as i32),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

/// The object an Event is about.
#[derive(Clone, Copy, Debug)]
pub struct Involved<'a> {
    pub namespace: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
}

/// Who reports an Event: component (kubelet, kernel-monitor) and host.
#[derive(Clone, Copy, Debug)]
pub struct Reporter<'a> {
    pub component: &'a str,
    pub host: &'a str,
}

/// A core/v1 Event (`type_` is Normal or Warning).
/// The preStop handler: the native sleep, or an exec hook.
fn prestop_handler(f: &PodFacts) -> Option<LifecycleHandler> {
    if let Some(s) = f.prestop_seconds {
        return Some(LifecycleHandler {
            sleep: Some(SleepAction { seconds: s }),
            ..Default::default()
        });
    }
    let command = f.prestop_exec.clone()?;
    Some(LifecycleHandler {
        exec: Some(k8s_openapi::api::core::v1::ExecAction {
            command: Some(command),
        }),
        ..Default::default()
    })
}

pub fn event(
    about: Involved<'_>,
    reason: &str,
    message: &str,
    type_: &str,
    by: Reporter<'_>,
) -> Event {
    let Involved {
        namespace,
        kind,
        name,
        uid,
    } = about;
    let Reporter { component, host } = by;
    Event {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: (kind != "Node").then(|| namespace.to_string()),
            uid: uid.map(str::to_string),
            api_version: Some("v1".into()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: Some(host.into()),
        }),
        event_time: Some(MicroTime(now().0)),
        reporting_component: Some(component.into()),
        reporting_instance: Some(host.into()),
        ..Default::default()
    }
}
