//! The lab's own record of what it did and when: pod starts, readiness,
//! SIGTERM and SIGKILL sent, ingress reloads, evictions. Tests assert on it
//! (SIGKILL exactly at grace), and it is the "what Kubernetes did" half of a
//! scenario's output next to the ground truth and the agent's events.

use crate::clock::Stamp;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabEventKind {
    /// A scenario step began (the step name is in `detail`).
    Step,
    PodCreated,
    ContainerStarted,
    PodReady,
    /// The pod's deletionTimestamp was set.
    DeletionRequested,
    /// The EndpointSlice marked the pod terminating (not ready).
    EndpointRemoved,
    /// The ingress reloaded with a new upstream set (`detail` lists it).
    IngressReload,
    PreStopStarted,
    /// An exec preStop hook failed (the kubelet's `FailedPreStopHook`).
    PreStopFailed,
    SigtermSent,
    SigkillSent,
    /// The container's main process ended (`detail`: how).
    ContainerExited,
    OomKilled,
    /// The pod's network namespace was removed.
    SandboxRemoved,
    PodDeleted,
    NodeCordoned,
    Evicted,
    /// The pod's node vanished: network gone, processes killed, nothing
    /// reported.
    NodeLost,
    /// The node lifecycle controller marked a node NotReady.
    NodeNotReady,
}

/// One timeline entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabEvent {
    pub at: Stamp,
    pub kind: LabEventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Shared, append-only; also carries the scenario step in flight, which the
/// load generator stamps on every request.
#[derive(Clone)]
pub struct Timeline {
    events: Arc<Mutex<Vec<LabEvent>>>,
    step_tx: Arc<watch::Sender<String>>,
}

impl Default for Timeline {
    fn default() -> Self {
        let (tx, _) = watch::channel("setup".to_string());
        Timeline {
            events: Arc::default(),
            step_tx: Arc::new(tx),
        }
    }
}

impl Timeline {
    pub fn record(
        &self,
        kind: LabEventKind,
        pod: Option<&str>,
        detail: impl Into<String>,
    ) -> Stamp {
        self.push(LabEvent {
            at: Stamp::now(),
            kind,
            pod: pod.map(str::to_string),
            ip: None,
            pid: None,
            detail: detail.into(),
        })
    }

    pub fn push(&self, ev: LabEvent) -> Stamp {
        let at = ev.at;
        tracing::debug!(kind = ?ev.kind, pod = ?ev.pod, detail = %ev.detail, "lab");
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ev);
        at
    }

    /// Marks the start of a scenario step.
    pub fn step(&self, name: impl Into<String>) {
        let name = name.into();
        tracing::info!(step = %name, "step");
        self.record(LabEventKind::Step, None, name.clone());
        self.step_tx.send_replace(name);
    }

    pub fn current_step(&self) -> watch::Receiver<String> {
        self.step_tx.subscribe()
    }

    pub fn events(&self) -> Vec<LabEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
