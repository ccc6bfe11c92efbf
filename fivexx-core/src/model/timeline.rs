//! The cluster as the facts describe it, over time: one [`PodTimeline`] per
//! pod, who owned each IP when, and whether each address was routable
//! (in a ready endpoint) when.
//!
//! Everything here is keyed by time so that a question ("who owned
//! 10.0.0.7 at 10:04:12.3?") has the same answer whatever order the facts
//! arrived in. State of pods that are long gone is pruned so memory stays
//! flat over a long capture.
//!
//! This file is longer than 600 lines because pod lifecycles, IP ownership
//! and endpoint routability are answered from one index and must change
//! together; its tests sit with it.

use super::evidence::{workload_key, Evidence, Observation, WorkloadKey};
use super::fact::{AgentGoneFact, FactSource, NodeNames};
use super::fact::{
    ClusterEvent, EndpointFact, NodeChange, NodeFact, PodChange, PodFact, ServiceFact, WorkloadRef,
};
use crate::event::{signal_name, ExitStatus, KernelEvent, KernelEventKind, SignalResult, TaskRef};
use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Signal numbers we reason about.
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// Keep at most this many entries of a per-pod list: a pod that emits
/// thousands of exits is pathological and the first ones are the evidence.
const PER_POD_LIMIT: usize = 32;

/// A signal the kernel saw being sent to a process of a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalSeen {
    pub at_ns: i64,
    pub node: String,
    pub signal: i32,
    pub sender: Option<TaskRef>,
    pub target: Option<TaskRef>,
    pub result: Option<SignalResult>,
    /// The sentence verdicts cite, built once.
    pub evidence: Evidence,
}

impl SignalSeen {
    /// Whether the sender is part of the pod lifecycle machinery (the
    /// container runtime or the kubelet), as opposed to some other process
    /// that happened to kill a pod's process.
    pub fn from_lifecycle(&self) -> bool {
        match &self.sender {
            None => false,
            Some(t) => is_lifecycle_comm(&t.comm),
        }
    }

    /// Whether the kernel sent it (an OOM kill runs in the allocating task's
    /// context, but `oom_victim` identifies it; the sender pid 0 is the kernel).
    pub fn from_kernel(&self) -> bool {
        self.sender.as_ref().is_some_and(|t| t.pid == 0)
    }
}

/// Process names of the runtime and the kubelet, which send SIGTERM and the
/// grace-expiry SIGKILL. `comm` is truncated to 15 bytes by the kernel.
pub fn is_lifecycle_comm(comm: &str) -> bool {
    const NAMES: [&str; 8] = [
        "containerd-shim",
        "containerd",
        "runc",
        "crun",
        "conmon",
        "kubelet",
        "dockerd",
        "crio",
    ];
    NAMES.iter().any(|n| comm.starts_with(n))
}

/// "SIGTERM to pid 7 (nginx) of shop/api-1 from containerd-shim (pid 9), delivered".
fn signal_evidence(pod: &str, e: &KernelEvent, node: Arc<str>) -> Evidence {
    let target = e.target.as_ref().map_or("a process".to_string(), |t| {
        format!("pid {} ({})", t.pid, t.comm)
    });
    let sender = e.task.as_ref().map_or("unknown sender".to_string(), |t| {
        format!("{} (pid {})", t.comm, t.pid)
    });
    let result = match e.signal_result {
        Some(SignalResult::Ignored) => ", ignored",
        Some(SignalResult::Delivered) => ", delivered",
        _ => "",
    };
    Evidence {
        at_ns: e.wall_ns,
        source: FactSource::Node(node),
        fact: Observation::text(format!(
            "{} to {target} of {pod} from {sender}{result}",
            signal_name(e.signal.unwrap_or(0))
        )),
    }
}

/// An exit of a pod's process.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitSeen {
    pub at_ns: i64,
    pub task: Option<TaskRef>,
    pub status: Option<ExitStatus>,
}

/// Everything known about one pod, in time order.
#[derive(Clone, Debug, Default)]
pub struct PodTimeline {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `namespace/name`, shared by every verdict that cites the pod.
    pub display: Arc<str>,
    /// The report's grouping key (see `explain::workload_key`).
    pub key: WorkloadKey,
    pub node: Option<String>,
    pub workload: Option<WorkloadRef>,
    pub created_ns: Option<i64>,
    /// First container start (API) or first process seen (kernel).
    pub started_ns: Option<i64>,
    /// Readiness transitions (time, ready).
    pub readiness: Vec<(i64, bool)>,
    pub ips: Vec<(i64, IpAddr)>,
    /// deletionTimestamp and grace period.
    pub deleting: Option<(i64, u32)>,
    pub deleting_evidence: Option<Evidence>,
    /// First SIGTERM to one of its processes.
    pub sigterm: Option<SignalSeen>,
    /// SIGKILLs to its processes (first few).
    pub sigkills: Vec<SignalSeen>,
    pub exits: Vec<ExitSeen>,
    pub oom: Option<(i64, Option<TaskRef>)>,
    /// Kubernetes Events (reason, message) about it.
    pub events: Vec<(i64, String, String)>,
    pub gone_ns: Option<i64>,
    /// Last time any fact touched it, for pruning.
    pub last_seen_ns: i64,
}

impl PodTimeline {
    /// `namespace/name`, or the uid when the API never named it.
    pub fn display_name(&self) -> String {
        self.display.to_string()
    }

    /// Recomputes the shared names after the name or owner changed.
    fn renamed(&mut self) {
        self.display = if self.name.is_empty() {
            Arc::from(format!("pod uid {}", self.uid))
        } else {
            Arc::from(format!("{}/{}", self.namespace, self.name))
        };
        self.key = workload_key(&self.namespace, self.workload.as_ref(), &self.name);
    }

    /// When termination began: the earlier of the deletionTimestamp and the
    /// first SIGTERM the kernel saw.
    pub fn termination_ns(&self) -> Option<i64> {
        let del = self.deleting.map(|d| d.0);
        let term = self.sigterm.as_ref().map(|s| s.at_ns);
        match (del, term) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn grace_period_s(&self) -> Option<u32> {
        self.deleting.map(|d| d.1)
    }

    /// Ready at `t` by the API's account (None: never reported).
    pub fn ready_at(&self, t: i64) -> Option<bool> {
        self.readiness
            .iter()
            .filter(|(at, _)| *at <= t)
            .max_by_key(|(at, _)| *at)
            .map(|(_, r)| *r)
    }

    /// The first time the pod became ready.
    pub fn first_ready_ns(&self) -> Option<i64> {
        self.readiness
            .iter()
            .filter(|(_, r)| *r)
            .map(|(at, _)| *at)
            .min()
    }

    /// The first lifecycle SIGKILL in `[from, to]`.
    pub fn sigkill_between(&self, from: i64, to: i64) -> Option<&SignalSeen> {
        self.sigkills
            .iter()
            .filter(|k| k.at_ns >= from && k.at_ns <= to)
            .min_by_key(|k| k.at_ns)
    }

    /// The first Kubernetes Event with `reason` in `[from, to]`: (time,
    /// message).
    pub fn event_between(&self, reason: &str, from: i64, to: i64) -> Option<(i64, &str)> {
        self.events
            .iter()
            .filter(|(at, r, _)| r == reason && *at >= from && *at <= to)
            .min_by_key(|(at, _, _)| *at)
            .map(|(at, _, m)| (*at, m.as_str()))
    }

    /// The last exit seen (the container's end), if any.
    pub fn last_exit(&self) -> Option<&ExitSeen> {
        self.exits.iter().max_by_key(|e| e.at_ns)
    }

    fn push_limited<T>(v: &mut Vec<T>, item: T) {
        if v.len() < PER_POD_LIMIT {
            v.push(item);
        }
    }
}

/// One membership change of an address in one slice.
#[derive(Clone, Debug)]
struct Membership {
    at_ns: i64,
    slice: String,
    service: (String, String),
    routable: bool,
}

/// What happened to one IP address: owners and endpoint membership.
#[derive(Clone, Debug, Default)]
struct AddressHistory {
    /// (from, pod uid), in any order.
    owners: Vec<(i64, String)>,
    membership: Vec<Membership>,
    last_seen_ns: i64,
}

/// The Kubernetes side of the world over time, plus what the kernel told us
/// about pods' processes.
#[derive(Debug, Default)]
pub struct ClusterTimeline {
    pods: HashMap<String, PodTimeline>,
    addresses: HashMap<IpAddr, AddressHistory>,
    /// Service cluster IP -> (namespace, name).
    services: HashMap<IpAddr, (String, String)>,
    /// Every address a pod, an endpoint or a proxy of the cluster had,
    /// kept after the pod is forgotten (a long-running proxy pod nothing
    /// is heard about for hours is pruned, but its address stays the
    /// cluster's, never a load balancer's outside).
    cluster_addrs: std::collections::HashSet<IpAddr>,
    /// Addresses that answered clients as proxies: peeked, or a status
    /// line seen from them.
    proxy_addrs: std::collections::HashSet<IpAddr>,
    /// When each Service was first seen present: a Service whose first
    /// ready endpoint came later had none until then, which is what a
    /// proxy answers 503 for (a new Service, or one scaled up from zero
    /// before the capture).
    service_seen: HashMap<(String, String), i64>,
    /// Cordon intervals per node (cordoned at, uncordoned at).
    cordons: HashMap<String, Vec<(i64, Option<i64>)>>,
    /// cgroup id -> pod uid, learnt from kernel events that carry both.
    cgroups: HashMap<u64, String>,
    /// container id -> pod uid.
    containers: HashMap<String, String>,
    nodes: NodeNames,
    /// Nodes whose agent stream ended (the first end seen): their kernel
    /// facts stop there.
    agents_gone: HashMap<String, AgentGoneFact>,
    /// When each node turned NotReady (in order).
    not_ready: HashMap<String, Vec<i64>>,
}

impl ClusterTimeline {
    pub fn apply_agent_gone(&mut self, g: &AgentGoneFact) {
        self.agents_gone
            .entry(g.node.clone())
            .or_insert_with(|| g.clone());
    }

    /// When `node` went quiet: the last message of its agent's stream,
    /// which ended afterwards (else when the end was seen); `None` while
    /// it answers.
    pub fn node_quiet_since(&self, node: &str) -> Option<i64> {
        let g = self.agents_gone.get(node)?;
        Some(g.last_heard_ns.unwrap_or(g.at_ns).min(g.at_ns))
    }

    /// How `node`'s agent stream ended, if it did.
    pub fn agent_gone(&self, node: &str) -> Option<&AgentGoneFact> {
        self.agents_gone.get(node)
    }

    /// The first time at or after `from` that `node` turned NotReady.
    pub fn not_ready_since(&self, node: &str, from: i64) -> Option<i64> {
        self.not_ready
            .get(node)?
            .iter()
            .copied()
            .find(|t| *t >= from)
    }

    pub fn pod(&self, uid: &str) -> Option<&PodTimeline> {
        self.pods.get(uid)
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodTimeline> {
        self.pods.values()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    fn pod_mut(&mut self, uid: &str, at: i64) -> &mut PodTimeline {
        let p = self
            .pods
            .entry(uid.to_string())
            .or_insert_with(|| PodTimeline {
                uid: uid.to_string(),
                ..PodTimeline::default()
            });
        p.last_seen_ns = p.last_seen_ns.max(at);
        p
    }

    pub fn apply_pod(&mut self, f: &PodFact) {
        let p = self.pod_mut(&f.uid, f.at_ns);
        let mut renamed = false;
        if p.name.is_empty() && !f.name.is_empty() {
            p.namespace.clone_from(&f.namespace);
            p.name.clone_from(&f.name);
            renamed = true;
        }
        if f.node.is_some() {
            p.node.clone_from(&f.node);
        }
        if f.owner.is_some() && p.workload != f.owner {
            p.workload.clone_from(&f.owner);
            renamed = true;
        }
        if renamed {
            p.renamed();
        }
        let mut new_ip = None;
        match &f.change {
            PodChange::Created => p.created_ns = Some(min_opt(p.created_ns, f.at_ns)),
            PodChange::Ip { ip } => {
                if !p.ips.iter().any(|(_, i)| i == ip) {
                    p.ips.push((f.at_ns, *ip));
                    new_ip = Some(*ip);
                }
            }
            PodChange::ContainerStarted { container_id, .. } => {
                p.started_ns = Some(min_opt(p.started_ns, f.at_ns));
                self.containers.insert(container_id.clone(), f.uid.clone());
            }
            PodChange::Ready => p.readiness.push((f.at_ns, true)),
            PodChange::NotReady => p.readiness.push((f.at_ns, false)),
            PodChange::Deleting { grace_period_s } => {
                if p.deleting.is_none_or(|(at, _)| f.at_ns < at) {
                    p.deleting = Some((f.at_ns, *grace_period_s));
                    p.deleting_evidence = Some(Evidence {
                        at_ns: f.at_ns,
                        source: FactSource::Api,
                        fact: Observation::text(format!(
                            "{} deleted (deletionTimestamp set, grace {grace_period_s} s)",
                            p.display
                        )),
                    });
                }
            }
            PodChange::Gone => p.gone_ns = Some(min_opt(p.gone_ns, f.at_ns)),
        }
        if let Some(ip) = new_ip {
            self.note_cluster_address(ip);
            let a = self.addresses.entry(ip).or_default();
            a.owners.push((f.at_ns, f.uid.clone()));
            a.last_seen_ns = a.last_seen_ns.max(f.at_ns);
        }
    }

    pub fn apply_endpoint(&mut self, f: &EndpointFact) {
        self.note_cluster_address(f.address);
        let a = self.addresses.entry(f.address).or_default();
        a.membership.push(Membership {
            at_ns: f.at_ns,
            slice: f.slice.clone(),
            service: (f.namespace.clone(), f.service.clone()),
            routable: f.routable(),
        });
        a.last_seen_ns = a.last_seen_ns.max(f.at_ns);
        if let Some(uid) = &f.pod_uid {
            if !a.owners.iter().any(|(_, u)| u == uid) {
                a.owners.push((f.at_ns, uid.clone()));
            }
        }
    }

    pub fn apply_service(&mut self, f: &ServiceFact) {
        if f.present {
            self.service_seen
                .entry((f.namespace.clone(), f.name.clone()))
                .or_insert(f.at_ns);
        }
        if let Some(ip) = f.cluster_ip {
            if f.present {
                self.services
                    .insert(ip, (f.namespace.clone(), f.name.clone()));
            }
        }
    }

    pub fn apply_node(&mut self, f: &NodeFact) {
        let list = self.cordons.entry(f.node.clone()).or_default();
        match &f.change {
            NodeChange::Cordoned => {
                if !list.iter().any(|(_, end)| end.is_none()) {
                    list.push((f.at_ns, None));
                }
            }
            NodeChange::Uncordoned => {
                if let Some(open) = list.iter_mut().find(|(_, end)| end.is_none()) {
                    open.1 = Some(f.at_ns);
                }
            }
            // NoSchedule/NoExecute taints are what `kubectl drain` and the
            // node lifecycle controller use; a NoExecute taint evicts.
            NodeChange::TaintAdded { key, effect } => {
                let drains = key == "node.kubernetes.io/unschedulable" || effect == "NoExecute";
                if drains && !list.iter().any(|(_, end)| end.is_none()) {
                    list.push((f.at_ns, None));
                }
            }
            NodeChange::TaintRemoved { .. } | NodeChange::Ready => {}
            NodeChange::NotReady => self
                .not_ready
                .entry(f.node.clone())
                .or_default()
                .push(f.at_ns),
        }
    }

    pub fn apply_event(&mut self, f: &ClusterEvent) {
        let Some(uid) = f.object_uid.clone().or_else(|| {
            self.pods
                .values()
                .find(|p| p.name == f.object_name && p.namespace == f.namespace)
                .map(|p| p.uid.clone())
        }) else {
            return;
        };
        let p = self.pod_mut(&uid, f.at_ns);
        if p.name.is_empty() && f.object_kind == "Pod" {
            p.namespace.clone_from(&f.namespace);
            p.name.clone_from(&f.object_name);
            p.renamed();
        }
        if f.reason == "OOMKilling" || f.reason == "OOMKilled" {
            // Keep the kernel's victim if the kernel saw it first.
            match &mut p.oom {
                Some((at, _)) => *at = (*at).min(f.at_ns),
                None => p.oom = Some((f.at_ns, None)),
            }
        }
        PodTimeline::push_limited(
            &mut p.events,
            (f.at_ns, f.reason.clone(), f.message.clone()),
        );
    }

    /// The pod a process-level kernel event is about.
    pub fn pod_of_process(&self, e: &KernelEvent) -> Option<String> {
        if let Some(uid) = &e.pod_uid {
            return Some(uid.clone());
        }
        if let Some(c) = &e.container_id {
            if let Some(uid) = self.containers.get(c) {
                return Some(uid.clone());
            }
        }
        e.cgroup_id.and_then(|c| self.cgroups.get(&c).cloned())
    }

    /// Records the process-level facts of a kernel event (signals, exits,
    /// OOM kills) on the pod they concern. Network events are attributed by
    /// address elsewhere, never by the interrupted task.
    pub fn apply_kernel_process(&mut self, e: &KernelEvent) {
        if let (Some(uid), Some(cg)) = (&e.pod_uid, e.cgroup_id) {
            self.cgroups.entry(cg).or_insert_with(|| uid.clone());
        }
        if let (Some(uid), Some(c)) = (&e.pod_uid, &e.container_id) {
            if !self.containers.contains_key(c) {
                self.containers.insert(c.clone(), uid.clone());
            }
        }
        if !matches!(
            e.kind,
            KernelEventKind::Signal | KernelEventKind::Exit | KernelEventKind::OomVictim
        ) {
            return;
        }
        let Some(uid) = self.pod_of_process(e) else {
            return;
        };
        let node = self.nodes.get(&e.node);
        let p = self.pod_mut(&uid, e.wall_ns);
        if p.node.is_none() && !e.node.is_empty() {
            p.node = Some(e.node.clone());
        }
        match e.kind {
            KernelEventKind::Signal => {
                let signal = e.signal.unwrap_or(0);
                if signal != SIGTERM && signal != SIGKILL {
                    return;
                }
                let s = SignalSeen {
                    at_ns: e.wall_ns,
                    node: e.node.clone(),
                    signal,
                    sender: e.task.clone(),
                    target: e.target.clone(),
                    result: e.signal_result,
                    evidence: signal_evidence(&p.display, e, node),
                };
                match s.signal {
                    SIGTERM => {
                        // Keep the earliest SIGTERM from the lifecycle; an
                        // ignored one is the evidence for "SIGTERM ignored".
                        let better = match &p.sigterm {
                            None => true,
                            Some(old) => {
                                (s.from_lifecycle(), -s.at_ns) > (old.from_lifecycle(), -old.at_ns)
                            }
                        };
                        if better {
                            p.sigterm = Some(s);
                        }
                    }
                    SIGKILL => PodTimeline::push_limited(&mut p.sigkills, s),
                    _ => {}
                }
            }
            KernelEventKind::Exit => {
                PodTimeline::push_limited(
                    &mut p.exits,
                    ExitSeen {
                        at_ns: e.wall_ns,
                        task: e.target.clone().or_else(|| e.task.clone()),
                        status: e.exit,
                    },
                );
            }
            KernelEventKind::OomVictim => {
                let victim = e.target.clone().or_else(|| e.task.clone());
                if p.oom
                    .as_ref()
                    .is_none_or(|(at, v)| v.is_none() || e.wall_ns < *at)
                {
                    p.oom = Some((e.wall_ns, victim));
                }
            }
            _ => {}
        }
    }

    /// Who owned `ip` at `t`: the most recent assignment at or before `t +
    /// skew`. A pod keeps owning its IP after it is gone until the IP is
    /// assigned again, because the proxy may still send to it.
    pub fn owner_at(&self, ip: IpAddr, t: i64, skew: i64) -> Option<&PodTimeline> {
        let a = self.addresses.get(&ip)?;
        let uid = a
            .owners
            .iter()
            .filter(|(from, _)| *from <= t + skew)
            .max_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)))
            .map(|(_, uid)| uid)?;
        self.pods.get(uid)
    }

    /// Whether a proxy routing to ready endpoints would route to `ip` at `t`.
    pub fn routable_at(&self, ip: IpAddr, t: i64) -> Option<bool> {
        let a = self.addresses.get(&ip)?;
        if a.membership.is_empty() {
            return None;
        }
        Some(routable(&a.membership, t))
    }

    /// The first time at or after `from` when `ip` stopped being routable
    /// (left every ready endpoint), if that happened.
    pub fn unroutable_since(&self, ip: IpAddr, from: i64) -> Option<i64> {
        let a = self.addresses.get(&ip)?;
        // Membership lists are short (a few changes per address): quadratic
        // scans without allocation beat sorting and maps here.
        a.membership
            .iter()
            .filter(|m| m.at_ns >= from && !m.routable)
            .map(|m| m.at_ns)
            .filter(|t| !routable(&a.membership, *t))
            .min()
    }

    /// When `ip` was in a ready endpoint: spans (from, to), `to` `None`
    /// while it still is. For the report's timeline.
    pub fn routable_spans(&self, ip: IpAddr) -> Vec<(i64, Option<i64>)> {
        let Some(a) = self.addresses.get(&ip) else {
            return Vec::new();
        };
        let mut times: Vec<i64> = a.membership.iter().map(|m| m.at_ns).collect();
        times.sort_unstable();
        times.dedup();
        let mut spans = Vec::new();
        let mut open: Option<i64> = None;
        for t in times {
            match (routable(&a.membership, t), open) {
                (true, None) => open = Some(t),
                (false, Some(from)) => {
                    spans.push((from, Some(t)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            spans.push((from, None));
        }
        spans
    }

    /// `namespace/name` of the Service whose endpoints last listed `ip`.
    pub fn service_of_endpoint(&self, ip: IpAddr) -> Option<&(String, String)> {
        let a = self.addresses.get(&ip)?;
        a.membership
            .iter()
            .max_by_key(|m| m.at_ns)
            .map(|m| &m.service)
    }

    /// No pod, Service or proxy of the cluster is known to have had `ip`: the
    /// peer of a connection to a pod from outside (an external load
    /// balancer in IP mode, a client on another network). Loopback and the
    /// unspecified address are the node's own, never outside.
    pub fn is_outside_cluster(&self, ip: IpAddr) -> bool {
        !(ip.is_loopback()
            || ip.is_unspecified()
            || self.cluster_addrs.contains(&ip)
            || self.services.contains_key(&ip))
    }

    /// `ip` answered clients as a proxy: it is the cluster's own.
    pub fn note_proxy(&mut self, ip: IpAddr) {
        self.note_cluster_address(ip);
        if self.proxy_addrs.len() < 4096 {
            self.proxy_addrs.insert(ip);
        }
    }

    /// `ip` answered clients as a proxy.
    pub fn is_proxy(&self, ip: IpAddr) -> bool {
        self.proxy_addrs.contains(&ip)
    }

    fn note_cluster_address(&mut self, ip: IpAddr) {
        /// A cluster's addresses over a long session, at most.
        const MAX_CLUSTER_ADDRS: usize = 1 << 20;
        if self.cluster_addrs.len() < MAX_CLUSTER_ADDRS {
            self.cluster_addrs.insert(ip);
        }
    }

    /// The service whose cluster IP this is.
    pub fn service_of_ip(&self, ip: IpAddr) -> Option<&(String, String)> {
        self.services.get(&ip)
    }

    /// Number of routable addresses of a service at `t`, and when the last
    /// one left (if it is zero).
    pub fn service_ready_count(&self, svc: &(String, String), t: i64) -> (usize, Option<i64>) {
        let mut count = 0;
        let mut last_left: Option<i64> = None;
        for (ip, a) in &self.addresses {
            if !a.membership.iter().any(|m| &m.service == svc) {
                continue;
            }
            if self.routable_at(*ip, t) == Some(true) {
                count += 1;
            } else if let Some(left) = a
                .membership
                .iter()
                .filter(|m| &m.service == svc && !m.routable && m.at_ns <= t)
                .map(|m| m.at_ns)
                .max()
            {
                last_left = Some(last_left.map_or(left, |l: i64| l.max(left)));
            }
        }
        (count, if count == 0 { last_left } else { None })
    }

    /// Each Service whose endpoints had no routable address at some time
    /// in `[from, to]`: (service, the stretch with none: when the last one
    /// left, or when the Service was first seen if it had none yet, and
    /// when one was routable again). A Service that never had a routable
    /// address in the whole capture is left out: nothing says it serves
    /// anything (a headless or unused Service).
    pub fn services_without_endpoints(
        &self,
        from: i64,
        to: i64,
    ) -> Vec<((String, String), i64, Option<i64>)> {
        let mut services: Vec<&(String, String)> = self
            .addresses
            .values()
            .flat_map(|a| a.membership.iter().map(|m| &m.service))
            .collect();
        services.sort();
        services.dedup();
        let mut out = Vec::new();
        for svc in services {
            // The service's changes in time order: a zero stretch starts
            // at a change that leaves none routable.
            let mut times: Vec<i64> = self
                .addresses
                .values()
                .flat_map(|a| a.membership.iter().filter(|m| &m.service == svc))
                .map(|m| m.at_ns)
                .filter(|t| *t <= to)
                .collect();
            times.sort_unstable();
            times.dedup();
            let count = |t: i64| self.service_ready_count(svc, t).0;
            // Seen before its first routable address: none until then.
            let seen = self
                .service_seen
                .get(svc)
                .copied()
                .filter(|s| times.first().is_none_or(|t| s < t) && count(*s) == 0);
            let mut zero_since: Option<i64> = seen;
            let mut had_one = false;
            for t in times.iter().copied() {
                let n = count(t);
                if n > 0 {
                    if let Some(since) = zero_since.take() {
                        if t >= from {
                            out.push((svc.clone(), since, Some(t)));
                        }
                    }
                    had_one = true;
                } else if had_one && zero_since.is_none() {
                    zero_since = Some(t);
                }
            }
            if let Some(since) = zero_since {
                let again = self.first_ready_after(svc, since);
                if had_one || again.is_some() {
                    out.push((svc.clone(), since, again));
                }
            }
        }
        out
    }

    /// The first change after `t` that made one of `svc`'s addresses
    /// routable.
    fn first_ready_after(&self, svc: &(String, String), t: i64) -> Option<i64> {
        self.addresses
            .values()
            .flat_map(|a| a.membership.iter().filter(|m| &m.service == svc))
            .filter(|m| m.routable && m.at_ns > t)
            .map(|m| m.at_ns)
            .filter(|at| self.service_ready_count(svc, *at).0 > 0)
            .min()
    }

    /// The pods behind `svc`'s addresses at `t`: (terminating, not yet
    /// ready), and their workload keys.
    pub fn service_pods_at(&self, svc: &(String, String), t: i64) -> (u32, u32, Vec<WorkloadKey>) {
        let (mut terminating, mut starting, mut keys) = (0, 0, Vec::new());
        for (ip, a) in &self.addresses {
            if !a.membership.iter().any(|m| &m.service == svc) {
                continue;
            }
            let Some(p) = self.owner_at(*ip, t, 0) else {
                continue;
            };
            if p.gone_ns.is_some_and(|g| g <= t) {
                continue;
            }
            if p.termination_ns().is_some_and(|x| x <= t) {
                terminating += 1;
            } else if p.ready_at(t) != Some(true) {
                starting += 1;
            }
            if !keys.contains(&p.key) {
                keys.push(p.key.clone());
            }
        }
        // New pods of the same workloads that no slice lists yet (no IP,
        // or not published) are starting too.
        for p in self.pods.values() {
            let listed = p.ips.iter().any(|(_, ip)| {
                self.addresses
                    .get(ip)
                    .is_some_and(|a| a.membership.iter().any(|m| &m.service == svc))
            });
            let alive = p.created_ns.is_some_and(|c| c <= t)
                && p.gone_ns.is_none_or(|g| g > t)
                && p.termination_ns().is_none_or(|x| x > t);
            if !listed && alive && keys.contains(&p.key) && p.ready_at(t) != Some(true) {
                starting += 1;
            }
        }
        (terminating, starting, keys)
    }

    /// The cordon interval of `node` containing `t`, if it was cordoned.
    pub fn cordoned_at(&self, node: &str, t: i64, skew: i64) -> Option<i64> {
        self.cordons.get(node)?.iter().find_map(|(from, to)| {
            (*from <= t + skew && to.is_none_or(|to| t <= to + skew)).then_some(*from)
        })
    }

    /// Pods gone (or silent) for longer than `horizon` before `now`: safe
    /// to forget once their measurements are recorded.
    pub fn retire_candidates(&self, now: i64, horizon: i64) -> Vec<String> {
        let cutoff = now.saturating_sub(horizon);
        let silent_cutoff = now.saturating_sub(horizon.saturating_mul(10));
        let mut v: Vec<String> = self
            .pods
            .values()
            .filter(|p| {
                let gone_long_ago = p.gone_ns.is_some() && p.last_seen_ns < cutoff;
                gone_long_ago || p.last_seen_ns < silent_cutoff
            })
            .map(|p| p.uid.clone())
            .collect();
        v.sort();
        v
    }

    /// Forgets these pods and whatever only they referenced, so memory
    /// stays flat over a long capture.
    pub fn remove_pods(&mut self, uids: &[String]) {
        if uids.is_empty() {
            return;
        }
        for u in uids {
            self.pods.remove(u);
        }
        let pods = &self.pods;
        self.addresses.retain(|_, a| {
            a.owners.retain(|(_, uid)| pods.contains_key(uid));
            !a.owners.is_empty()
        });
        self.cgroups.retain(|_, uid| pods.contains_key(uid));
        self.containers.retain(|_, uid| pods.contains_key(uid));
    }
}

/// Routable at `t`: some slice's latest state at or before `t` is routable
/// (at equal times, a removal wins).
fn routable(membership: &[Membership], t: i64) -> bool {
    membership.iter().enumerate().any(|(i, m)| {
        m.routable
            && m.at_ns <= t
            && !membership.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.slice == m.slice
                    && o.at_ns <= t
                    && (o.at_ns > m.at_ns || (o.at_ns == m.at_ns && !o.routable))
            })
    })
}

fn min_opt(a: Option<i64>, b: i64) -> i64 {
    a.map_or(b, |a| a.min(b))
}
