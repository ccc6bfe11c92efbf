//! Synthetic timelines: a small builder that emits facts exactly as the
//! agent and the plugin's watches would, for unit tests, property tests and
//! the benchmark. Not used by the product itself.
//!
//! Kernel facts follow what the kernel really emits: a refused connect is
//! `receive_reset` in SYN_SENT, `state_change` SYN_SENT->CLOSE and
//! `sock_error` 111 on the proxy's node (plus `send_reset` NO_SOCKET on the
//! pod's node on 6.10+); a timeout is SYN retransmits, `sock_error` 110 and
//! SYN_SENT->CLOSE.
//!
//! This file is longer than 600 lines because it is one builder whose
//! methods each emit one fact shape the agent or a watch emits (kernel,
//! API, proxy logs of three proxies); split up, the shapes would drift
//! apart from one another.

use crate::event::{
    Errno, ExitStatus, FourTuple, KernelEvent, KernelEventKind, ResetReason, SignalResult, TaskRef,
    TcpState,
};
use crate::model::{
    ClusterEvent, EndpointFact, Fact, NodeChange, NodeFact, PodChange, PodFact, ServiceFact,
    WorkloadRef,
};
use crate::proxylog::{envoy, haproxy, nginx, ProxyAccount, UpstreamOutcome, UpstreamTry};
use std::net::{IpAddr, Ipv4Addr};

pub const SECOND: i64 = 1_000_000_000;
pub const MS: i64 = 1_000_000;
/// 2023-11-14T22:13:20Z, a base for synthetic clocks.
pub const T0: i64 = 1_700_000_000 * SECOND;

/// A pod of the synthetic cluster.
#[derive(Clone, Debug)]
pub struct SynthPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub ip: IpAddr,
    pub workload: Option<WorkloadRef>,
    /// Host pid of its PID 1.
    pub pid: i32,
    pub comm: String,
    pub cgroup_id: u64,
}

/// Builds a list of facts.
#[derive(Clone, Debug, Default)]
pub struct Synth {
    pub facts: Vec<Fact>,
    next_port: u16,
    next_sock: u64,
}

pub fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn task(pid: i32, comm: &str) -> TaskRef {
    TaskRef {
        pid,
        comm: comm.to_string(),
    }
}

impl Synth {
    pub fn new() -> Synth {
        Synth {
            facts: Vec::new(),
            next_port: 40000,
            next_sock: 1,
        }
    }

    /// A pod of a Deployment, `n` distinguishes pods (IP, pid, cgroup).
    pub fn pod_spec(workload: &str, n: u32, node: &str) -> SynthPod {
        SynthPod {
            namespace: "shop".into(),
            name: format!("{workload}-{n}"),
            uid: format!("uid-{workload}-{n}"),
            node: node.into(),
            ip: ip4(10, 244, (n / 250) as u8, (n % 250) as u8 + 2),
            workload: Some(WorkloadRef {
                kind: "Deployment".into(),
                name: workload.into(),
            }),
            pid: 10_000 + n as i32,
            comm: workload.chars().take(15).collect(),
            cgroup_id: 5_000 + u64::from(n),
        }
    }

    fn pod_fact(&mut self, p: &SynthPod, at: i64, change: PodChange) {
        self.facts.push(Fact::Pod(PodFact {
            at_ns: at,
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            node: Some(p.node.clone()),
            owner: p.workload.clone(),
            change,
        }));
    }

    fn endpoint(&mut self, p: &SynthPod, at: i64, present: bool, ready: bool, terminating: bool) {
        let service = p
            .workload
            .as_ref()
            .map_or(p.name.clone(), |w| w.name.clone());
        self.facts.push(Fact::Endpoint(EndpointFact {
            at_ns: at,
            namespace: p.namespace.clone(),
            service: service.clone(),
            slice: format!("{service}-slice"),
            address: p.ip,
            pod_uid: Some(p.uid.clone()),
            present,
            ready,
            serving: ready || terminating,
            terminating,
        }));
    }

    /// Created, IP, container started, ready, in the endpoints.
    pub fn start_pod(&mut self, p: &SynthPod, at: i64, ready_after: i64) {
        self.pod_fact(p, at, PodChange::Created);
        self.pod_fact(p, at, PodChange::Ip { ip: p.ip });
        self.pod_fact(
            p,
            at,
            PodChange::ContainerStarted {
                container_id: format!("cid-{}", p.uid),
                name: "app".into(),
            },
        );
        self.pod_fact(p, at + ready_after, PodChange::Ready);
        self.endpoint(p, at + ready_after, true, true, false);
    }

    /// The ingress proxy as a pod at `ip` on `node`, running since long
    /// before T0 (no owner, in no Service's endpoints): its address is the
    /// cluster's, so its failed connections are a proxy's, not those of a
    /// load balancer outside.
    pub fn proxy_pod(&mut self, ip: IpAddr, node: &str) {
        let p = SynthPod {
            namespace: "ingress-nginx".into(),
            name: format!("ingress-nginx-controller-{ip}"),
            uid: format!("uid-ingress-{ip}"),
            node: node.into(),
            ip,
            workload: None,
            pid: 3000,
            comm: "nginx".into(),
            cgroup_id: 4_000,
        };
        let at = T0 - 3600 * SECOND;
        self.pod_fact(&p, at, PodChange::Created);
        self.pod_fact(&p, at, PodChange::Ip { ip });
        self.pod_fact(&p, at + SECOND, PodChange::Ready);
    }

    /// deletionTimestamp with `grace_s`.
    pub fn delete(&mut self, p: &SynthPod, at: i64, grace_s: u32) {
        self.pod_fact(
            p,
            at,
            PodChange::Deleting {
                grace_period_s: grace_s,
            },
        );
    }

    fn kernel(&self, kind: KernelEventKind, node: &str, at: i64) -> KernelEvent {
        let mut e = KernelEvent::new(kind, (at - T0 + 1000 * SECOND) as u64, at);
        e.node = node.to_string();
        e
    }

    /// A signal from `sender` to the pod's PID 1.
    pub fn signal(
        &mut self,
        p: &SynthPod,
        at: i64,
        sig: i32,
        sender: (i32, &str),
        result: SignalResult,
    ) {
        let mut e = self.kernel(KernelEventKind::Signal, &p.node, at);
        e.signal = Some(sig);
        e.signal_result = Some(result);
        e.task = Some(task(sender.0, sender.1));
        e.target = Some(task(p.pid, &p.comm));
        e.cgroup_id = Some(p.cgroup_id);
        e.pod_uid = Some(p.uid.clone());
        e.container_id = Some(format!("cid-{}", p.uid));
        self.facts.push(Fact::Kernel(e));
    }

    /// SIGTERM from containerd-shim (the kubelet's way).
    pub fn sigterm(&mut self, p: &SynthPod, at: i64, ignored: bool) {
        let r = if ignored {
            SignalResult::Ignored
        } else {
            SignalResult::Delivered
        };
        self.signal(p, at, 15, (900, "containerd-shim"), r);
    }

    pub fn sigkill(&mut self, p: &SynthPod, at: i64, sender: (i32, &str)) {
        self.signal(p, at, 9, sender, SignalResult::Delivered);
    }

    pub fn exit(&mut self, p: &SynthPod, at: i64, status: ExitStatus) {
        let mut e = self.kernel(KernelEventKind::Exit, &p.node, at);
        e.target = Some(task(p.pid, &p.comm));
        e.task = e.target.clone();
        e.exit = Some(status);
        e.cgroup_id = Some(p.cgroup_id);
        e.pod_uid = Some(p.uid.clone());
        self.facts.push(Fact::Kernel(e));
    }

    /// `oom:mark_victim` then the kernel's SIGKILL.
    pub fn oom(&mut self, p: &SynthPod, at: i64) {
        let mut e = self.kernel(KernelEventKind::OomVictim, &p.node, at);
        e.target = Some(task(p.pid, &p.comm));
        e.cgroup_id = Some(p.cgroup_id);
        e.pod_uid = Some(p.uid.clone());
        self.facts.push(Fact::Kernel(e));
        self.sigkill(p, at, (0, "swapper/0"));
    }

    /// The address leaves the ready endpoints (terminating).
    pub fn endpoint_not_ready(&mut self, p: &SynthPod, at: i64) {
        self.endpoint(p, at, true, false, true);
    }

    pub fn endpoint_removed(&mut self, p: &SynthPod, at: i64) {
        self.endpoint(p, at, false, false, true);
    }

    pub fn gone(&mut self, p: &SynthPod, at: i64) {
        self.pod_fact(p, at, PodChange::Gone);
    }

    pub fn cordon(&mut self, node: &str, at: i64) {
        self.facts.push(Fact::Node(NodeFact {
            at_ns: at,
            node: node.into(),
            change: NodeChange::Cordoned,
        }));
    }

    /// `node`'s Ready condition turned False or Unknown at `at`.
    pub fn node_not_ready(&mut self, node: &str, at: i64) {
        self.facts.push(Fact::Node(NodeFact {
            at_ns: at,
            node: node.into(),
            change: NodeChange::NotReady,
        }));
    }

    /// The plugin's stream from `node`'s agent ended at `at`, its last
    /// message having come at `last_heard`.
    pub fn agent_gone(&mut self, node: &str, last_heard: i64, at: i64) {
        self.facts
            .push(Fact::AgentGone(crate::model::AgentGoneFact {
                at_ns: at,
                node: node.into(),
                reason: "no message for 5 s: the node or its agent stopped answering".into(),
                last_heard_ns: Some(last_heard),
            }));
    }

    pub fn service(&mut self, ns: &str, name: &str, ip: IpAddr, at: i64) {
        self.facts.push(Fact::Service(ServiceFact {
            at_ns: at,
            namespace: ns.into(),
            name: name.into(),
            cluster_ip: Some(ip),
            present: true,
        }));
    }

    pub fn k8s_event(&mut self, p: &SynthPod, at: i64, reason: &str) {
        self.k8s_event_says(p, at, reason, "");
    }

    /// A Kubernetes Event about `p` with its message.
    pub fn k8s_event_says(&mut self, p: &SynthPod, at: i64, reason: &str, message: &str) {
        self.facts.push(Fact::Event(ClusterEvent {
            at_ns: at,
            namespace: p.namespace.clone(),
            reason: reason.into(),
            message: message.into(),
            object_kind: "Pod".into(),
            object_name: p.name.clone(),
            object_uid: Some(p.uid.clone()),
            node: Some(p.node.clone()),
        }));
    }

    fn tuple(&mut self, proxy: IpAddr, dst: IpAddr, dport: u16) -> (FourTuple, u64) {
        self.next_port = if self.next_port >= 60999 {
            40000
        } else {
            self.next_port + 1
        };
        self.next_sock += 1;
        (
            FourTuple {
                saddr: proxy,
                sport: self.next_port,
                daddr: dst,
                dport,
            },
            self.next_sock,
        )
    }

    fn net(
        &mut self,
        kind: KernelEventKind,
        node: &str,
        at: i64,
        t: FourTuple,
        sock: u64,
    ) -> KernelEvent {
        let mut e = self.kernel(kind, node, at);
        e.tuple = Some(t);
        e.sock_id = Some(sock);
        // Receive-side events run in softirq: the task is whatever ran.
        e.task = Some(task(4242, "wrk"));
        e
    }

    /// The proxy aborts its own connection to `dst` (close with SO_LINGER
    /// 0): the kernel's `tcp_disconnect` reports ECONNRESET on a socket
    /// whose source address and peer port it has already cleared, as seen
    /// on 6.18 with HAProxy.
    pub fn own_abort(&mut self, node: &str, dst: IpAddr, at: i64) {
        let (t, sock) = self.tuple(IpAddr::from([0u8, 0, 0, 0]), dst, 0);
        let mut e = self.net(KernelEventKind::SockError, node, at, t, sock);
        e.errno = Some(Errno::ECONNRESET);
        e.task = Some(task(3100, "haproxy"));
        self.facts.push(Fact::Kernel(e));
    }

    /// A connect from the proxy (on `proxy_node`) to `dst` refused by RST.
    /// With `server_node`, the server's kernel also reports its `send_reset`.
    pub fn refused(
        &mut self,
        proxy_node: &str,
        proxy: IpAddr,
        dst: IpAddr,
        at: i64,
        server_node: Option<&str>,
    ) -> FourTuple {
        let (t, sock) = self.tuple(proxy, dst, 8080);
        if let Some(n) = server_node {
            self.refusal_by_server(n, t, at - 100_000);
        }
        let mut e = self.net(KernelEventKind::ReceiveReset, proxy_node, at, t, sock);
        e.tcp_state = Some(TcpState::SynSent);
        self.facts.push(Fact::Kernel(e));
        let mut e = self.net(KernelEventKind::StateChange, proxy_node, at + 1000, t, sock);
        e.tcp_state = Some(TcpState::SynSent);
        e.new_state = Some(TcpState::Close);
        self.facts.push(Fact::Kernel(e));
        let mut e = self.net(KernelEventKind::SockError, proxy_node, at + 2000, t, sock);
        e.errno = Some(Errno::ECONNREFUSED);
        self.facts.push(Fact::Kernel(e));
        t
    }

    /// A SYN from `client`, off every traced node (an external load
    /// balancer), refused by `dst`'s kernel: only the server's `send_reset`
    /// (NO_SOCKET) on `server_node` is seen.
    pub fn refused_at_server(
        &mut self,
        server_node: &str,
        client: IpAddr,
        dst: IpAddr,
        at: i64,
    ) -> FourTuple {
        let (t, _) = self.tuple(client, dst, 8080);
        self.refusal_by_server(server_node, t, at);
        t
    }

    /// The RST the server's kernel sends to a SYN no socket takes
    /// (`send_reset` NO_SOCKET, socketless), for client-first tuple `t`.
    fn refusal_by_server(&mut self, node: &str, t: FourTuple, at: i64) {
        let back = FourTuple {
            saddr: t.daddr,
            sport: t.dport,
            daddr: t.saddr,
            dport: t.sport,
        };
        let mut e = self.net(KernelEventKind::SendReset, node, at, back, 0);
        e.sock_id = None;
        e.reset_reason = Some(ResetReason::NoSocket);
        self.facts.push(Fact::Kernel(e));
    }

    /// Refused without RST (ICMP port unreachable / REJECT): error 111 only.
    pub fn rejected(&mut self, proxy_node: &str, proxy: IpAddr, dst: IpAddr, at: i64) -> FourTuple {
        let (t, sock) = self.tuple(proxy, dst, 80);
        let mut e = self.net(KernelEventKind::SockError, proxy_node, at, t, sock);
        e.errno = Some(Errno::ECONNREFUSED);
        self.facts.push(Fact::Kernel(e));
        let mut e = self.net(KernelEventKind::StateChange, proxy_node, at + 1000, t, sock);
        e.tcp_state = Some(TcpState::SynSent);
        e.new_state = Some(TcpState::Close);
        self.facts.push(Fact::Kernel(e));
        t
    }

    /// A connect sent at `at` that is never answered: SYN retransmits at
    /// +1 s and +3 s, then the proxy's connect timeout closes it at +`after`.
    pub fn timed_out(
        &mut self,
        proxy_node: &str,
        proxy: IpAddr,
        dst: IpAddr,
        at: i64,
        after: i64,
        errno: bool,
    ) -> FourTuple {
        let (t, sock) = self.tuple(proxy, dst, 8080);
        for k in [1, 3] {
            if k * SECOND < after {
                let mut e = self.net(
                    KernelEventKind::SynRetransmit,
                    proxy_node,
                    at + k * SECOND,
                    t,
                    sock,
                );
                e.tcp_state = Some(TcpState::SynSent);
                self.facts.push(Fact::Kernel(e));
            }
        }
        if errno {
            let mut e = self.net(KernelEventKind::SockError, proxy_node, at + after, t, sock);
            e.errno = Some(Errno::ETIMEDOUT);
            self.facts.push(Fact::Kernel(e));
        }
        let mut e = self.net(
            KernelEventKind::StateChange,
            proxy_node,
            at + after + 1000,
            t,
            sock,
        );
        e.tcp_state = Some(TcpState::SynSent);
        e.new_state = Some(TcpState::Close);
        // The agent says when the socket entered SYN_SENT.
        e.syn_sent_ns = Some(at);
        self.facts.push(Fact::Kernel(e));
        t
    }

    /// An established (pooled) connection reset by the server.
    pub fn reset(
        &mut self,
        proxy_node: &str,
        proxy: IpAddr,
        dst: IpAddr,
        at: i64,
        server_node: Option<&str>,
    ) -> FourTuple {
        let (t, sock) = self.tuple(proxy, dst, 8080);
        if let Some(n) = server_node {
            let mut e = self.net(
                KernelEventKind::SendReset,
                n,
                at - 100_000,
                FourTuple {
                    saddr: t.daddr,
                    sport: t.dport,
                    daddr: t.saddr,
                    dport: t.sport,
                },
                0,
            );
            e.sock_id = None;
            e.tcp_state = Some(TcpState::Established);
            e.reset_reason = Some(ResetReason::NotSpecified);
            self.facts.push(Fact::Kernel(e));
        }
        let mut e = self.net(KernelEventKind::ReceiveReset, proxy_node, at, t, sock);
        e.tcp_state = Some(TcpState::Established);
        self.facts.push(Fact::Kernel(e));
        let mut e = self.net(KernelEventKind::SockError, proxy_node, at + 1000, t, sock);
        e.errno = Some(Errno::ECONNRESET);
        self.facts.push(Fact::Kernel(e));
        t
    }

    /// An established connection `client` (ephemeral port) to `server`
    /// (port 8080) reset by the client itself, an abortive close (HAProxy
    /// closes its server connections so): the client's `send_reset`, and
    /// the server's `receive_reset` and ECONNRESET on `server_node`.
    pub fn reset_by_client(
        &mut self,
        client_node: &str,
        client: IpAddr,
        server: IpAddr,
        at: i64,
        server_node: &str,
    ) -> FourTuple {
        let (t, sock) = self.tuple(client, server, 8080);
        let mut e = self.net(KernelEventKind::SendReset, client_node, at, t, sock);
        e.tcp_state = Some(TcpState::Established);
        e.reset_reason = Some(ResetReason::NotSpecified);
        self.facts.push(Fact::Kernel(e));
        let back = FourTuple {
            saddr: t.daddr,
            sport: t.dport,
            daddr: t.saddr,
            dport: t.sport,
        };
        let mut e = self.net(
            KernelEventKind::ReceiveReset,
            server_node,
            at + 100_000,
            back,
            sock + 1_000_000,
        );
        e.tcp_state = Some(TcpState::Established);
        self.facts.push(Fact::Kernel(e));
        let mut e = self.net(
            KernelEventKind::SockError,
            server_node,
            at + 101_000,
            back,
            sock + 1_000_000,
        );
        e.errno = Some(Errno::ECONNRESET);
        self.facts.push(Fact::Kernel(e));
        t
    }

    /// One side of connection `t` (client side first, as [`reset`]
    /// returns it) closes it after `idle_ns` without data: the kernel's
    /// ESTABLISHED -> FIN_WAIT1 with the idle time, on `node`.
    /// `by_server`: the server (`t.daddr`) closed, else the client.
    ///
    /// [`reset`]: Synth::reset
    pub fn idle_close(&mut self, node: &str, t: FourTuple, at: i64, idle_ns: i64, by_server: bool) {
        let tuple = if by_server {
            FourTuple {
                saddr: t.daddr,
                sport: t.dport,
                daddr: t.saddr,
                dport: t.sport,
            }
        } else {
            t
        };
        let mut e = self.net(KernelEventKind::StateChange, node, at, tuple, 0);
        e.sock_id = None;
        e.tcp_state = Some(TcpState::Established);
        e.new_state = Some(TcpState::FinWait1);
        e.idle_us = Some(u64::try_from(idle_ns / 1000).unwrap_or(0));
        self.facts.push(Fact::Kernel(e));
    }

    /// The server (`t.daddr`) of connection `t` closes it with the proxy's
    /// request unread after `idle_ns` without sending: ESTABLISHED ->
    /// CLOSE on `node`, the idle time counted from its last send.
    pub fn idle_abort(&mut self, node: &str, t: FourTuple, at: i64, idle_ns: i64) {
        let tuple = FourTuple {
            saddr: t.daddr,
            sport: t.dport,
            daddr: t.saddr,
            dport: t.sport,
        };
        let mut e = self.net(KernelEventKind::StateChange, node, at, tuple, 0);
        e.sock_id = None;
        e.tcp_state = Some(TcpState::Established);
        e.new_state = Some(TcpState::Close);
        e.idle_us = Some(u64::try_from(idle_ns / 1000).unwrap_or(0));
        self.facts.push(Fact::Kernel(e));
    }

    /// The tuple the next [`reset`](Synth::reset) from `proxy` to `dst`
    /// will use, so that a close can be placed before it.
    pub fn peek_tuple(&self, proxy: IpAddr, dst: IpAddr) -> FourTuple {
        let mut copy = Synth {
            facts: Vec::new(),
            next_port: self.next_port,
            next_sock: self.next_sock,
        };
        copy.tuple(proxy, dst, 8080).0
    }

    /// The proxy (pid 3000, nginx) on `node` writes a 5xx status line to
    /// its client at `client:client_port`.
    pub fn http_5xx(
        &mut self,
        node: &str,
        proxy: IpAddr,
        client: IpAddr,
        client_port: u16,
        at: i64,
        status: u16,
    ) -> FourTuple {
        let t = FourTuple {
            saddr: proxy,
            sport: 80,
            daddr: client,
            dport: client_port,
        };
        let mut e = self.kernel(KernelEventKind::HttpResponse, node, at);
        e.tuple = Some(t);
        e.http_status = Some(status);
        e.fd = Some(12);
        e.http_peek_bytes = Some(16);
        e.task = Some(task(3000, "nginx"));
        self.facts.push(Fact::Kernel(e));
        t
    }

    /// [`http_5xx`](Synth::http_5xx) written by another process' thread
    /// `comm` (Envoy's workers are `wrk:worker_N`).
    #[allow(clippy::too_many_arguments)]
    pub fn http_5xx_by(
        &mut self,
        comm: &str,
        node: &str,
        proxy: IpAddr,
        client: IpAddr,
        client_port: u16,
        at: i64,
        status: u16,
    ) -> FourTuple {
        let t = self.http_5xx(node, proxy, client, client_port, at, status);
        if let Some(Fact::Kernel(e)) = self.facts.last_mut() {
            e.task = Some(task(3000, comm));
        }
        t
    }

    /// The last access-log line names its client's port (HAProxy's
    /// `%cp`, Envoy's downstream address), as the formats that log it do.
    pub fn logged_client_port(&mut self, port: u16) {
        if let Some(Fact::ProxyLog(l)) = self.facts.last_mut() {
            l.account.client_port = Some(port);
        }
    }

    /// The last access-log line took the proxy `ms` over its request.
    pub fn logged_request_time(&mut self, ms: u64) {
        if let Some(Fact::ProxyLog(l)) = self.facts.last_mut() {
            l.account.request_time_ms = Some(ms);
            for t in &mut l.account.tries {
                t.response_ms = Some(ms);
            }
        }
    }

    /// An access-log line of proxy pod `ingress/nginx-1` (upstreaminfo):
    /// `status` to `client`, with each upstream tried and its status.
    pub fn proxy_log(
        &mut self,
        node: &str,
        client: IpAddr,
        at: i64,
        status: u16,
        tried: &[(IpAddr, Option<u16>)],
    ) {
        let mut a = ProxyAccount::new(nginx::UPSTREAMINFO, at, status);
        a.client = Some(client);
        a.request_time_ms = Some(1);
        a.upstream_name = Some("shop-api-8080".into());
        a.tries = tried
            .iter()
            .map(|(ip, status)| UpstreamTry {
                addr: std::net::SocketAddr::new(*ip, 8080),
                status: *status,
                response_ms: Some(0),
            })
            .collect();
        self.proxy_fact("ingress", "nginx-1", node, a);
    }

    /// An Envoy access-log line of proxy pod `envoy-gateway-system/envoy-1`
    /// (Envoy Gateway's JSON fields): `status` with response `flags` to
    /// `client`, answered at `at`, from `upstream` (port 8080) or none.
    pub fn envoy_log(
        &mut self,
        node: &str,
        client: IpAddr,
        at: i64,
        status: u16,
        flags: &str,
        upstream: Option<IpAddr>,
    ) {
        let mut a = ProxyAccount::new(envoy::GATEWAY_JSON, at, status);
        let words = envoy::words(flags);
        let answered = words.outcome == UpstreamOutcome::Answered;
        a.client = Some(client);
        a.request_time_ms = Some(1);
        a.upstream_name = Some("httproute/shop/api/rule/0".into());
        a.tries = upstream
            .iter()
            .map(|ip| UpstreamTry {
                addr: std::net::SocketAddr::new(*ip, 8080),
                status: answered.then_some(status),
                response_ms: None,
            })
            .collect();
        a.words = Some(words);
        self.proxy_fact("envoy-gateway-system", "envoy-1", node, a);
    }

    /// An HAProxy `option httplog` line of proxy pod
    /// `haproxy-controller/haproxy-1`: `status` with termination `state`,
    /// backend `shop-api-8080` and `server` (`<NOSRV>` for none), after
    /// `retries` (`redispatched`: `+`), `active_ms` long, answered at `at`.
    #[expect(clippy::too_many_arguments, reason = "one line's fields")]
    pub fn haproxy_log(
        &mut self,
        node: &str,
        client: IpAddr,
        at: i64,
        status: u16,
        state: &str,
        server: &str,
        retries: u32,
        redispatched: bool,
        active_ms: u64,
    ) {
        let mut a = ProxyAccount::new(haproxy::HTTPLOG, at, status);
        a.client = Some(client);
        a.request_time_ms = Some(active_ms);
        a.upstream_name = Some("shop-api-8080".into());
        a.words = Some(haproxy::words(
            state,
            Some(server.into()),
            retries,
            redispatched,
        ));
        self.proxy_fact("haproxy-controller", "haproxy-1", node, a);
    }

    fn proxy_fact(&mut self, namespace: &str, pod: &str, node: &str, account: ProxyAccount) {
        self.facts
            .push(Fact::ProxyLog(crate::model::ProxyLogFact::new(
                namespace,
                pod,
                Some(node),
                account,
            )));
    }

    /// The plugin began peeking at proxy pod `ingress/nginx-2` (address
    /// `proxy`) on `node` at `at`, mid-session.
    pub fn http_peek(&mut self, node: &str, proxy: IpAddr, at: i64) {
        self.facts.push(Fact::HttpPeek(crate::model::HttpPeekFact {
            at_ns: at,
            namespace: "ingress".into(),
            pod: "nginx-2".into(),
            node: node.into(),
            proxy_ip: proxy,
        }));
    }

    /// Sorts facts by time (stable), as a merged stream would be.
    pub fn sorted(mut self) -> Vec<Fact> {
        self.facts.sort_by_key(|f| f.at_ns());
        self.facts
    }
}

/// A lazily generated stream of `n` facts for the benchmark: rollouts of a
/// few workloads, one after another, each with graceful terminations, the
/// refusals of endpoint lag, and resets at SIGKILL, on three nodes. Memory
/// of the generator is constant.
pub fn bench_stream(n: u64) -> impl Iterator<Item = Fact> {
    let mut produced = 0u64;
    let mut round = 0u32;
    let mut buf: std::collections::VecDeque<Fact> = std::collections::VecDeque::new();
    std::iter::from_fn(move || {
        if produced >= n {
            return None;
        }
        if buf.is_empty() {
            buf.extend(bench_round(round));
            round += 1;
        }
        produced += 1;
        buf.pop_front()
    })
}

/// One rollout of one pod: ~200 facts over ~40 s of event time.
fn bench_round(round: u32) -> Vec<Fact> {
    let mut s = Synth::new();
    s.next_port = 40000 + (round % 20000) as u16;
    let base = T0 + i64::from(round) * 40 * SECOND;
    let workload = ["api", "web", "cart", "search"][(round % 4) as usize];
    let node = ["node-1", "node-2", "node-3"][(round % 3) as usize];
    let p = Synth::pod_spec(workload, round % 60_000, node);
    let proxy = ip4(10, 1, 0, 10);
    if round == 0 {
        s.proxy_pod(proxy, "node-1");
    }
    s.start_pod(&p, base, 2 * SECOND);
    let term = base + 5 * SECOND;
    s.delete(&p, term, 30);
    s.sigterm(&p, term + 10 * MS, round.is_multiple_of(7));
    // Refusals while the proxy still routes to it (endpoint lag 3 s).
    for k in 0..45 {
        s.refused(
            "node-0",
            proxy,
            p.ip,
            term + 50 * MS + k * 60 * MS,
            Some(node),
        );
    }
    s.endpoint_not_ready(&p, term + 3 * SECOND);
    if round.is_multiple_of(7) {
        // SIGTERM ignored: resets at the SIGKILL 30 s later.
        for _ in 0..3 {
            s.reset(
                "node-0",
                proxy,
                p.ip,
                term + 30 * SECOND + 2 * MS,
                Some(node),
            );
        }
        s.sigkill(&p, term + 30 * SECOND, (900, "containerd-shim"));
        s.exit(
            &p,
            term + 30 * SECOND + MS,
            ExitStatus {
                code: None,
                signal: Some(9),
                core_dumped: false,
            },
        );
    } else {
        s.exit(
            &p,
            term + 1500 * MS,
            ExitStatus {
                code: Some(0),
                signal: None,
                core_dumped: false,
            },
        );
    }
    s.endpoint_removed(&p, term + 31 * SECOND);
    s.gone(&p, term + 32 * SECOND);
    s.sorted()
}
