//! Binary encoding of facts inside captures (postcard).
//!
//! postcard is not self-describing, so it cannot honour the
//! `skip_serializing_if` attributes that keep the JSON schema of
//! [`KernelEvent`] tidy. These mirror types carry every field explicitly;
//! they are the frozen binary layout of format 1.x. Add new fields only at
//! the end of a struct, and only with a minor version bump.
//!
//! Proxy-log facts (format 1.1) are not a `FactWire` variant: they go in
//! their own record type, so that a 1.0 reader skips them as an unknown
//! record instead of failing to decode a fact.

use crate::event::{
    ExitStatus, FourTuple, KernelEvent, KernelEventKind, SignalResult, TaskRef, TcpState,
};
use crate::model::{
    ClusterEvent, EndpointFact, Fact, NodeFact, PodFact, ProxyLogFact, ServiceFact,
};
use crate::proxylog::LogFormat;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

use super::tag;

#[derive(Serialize, Deserialize)]
enum FactWire {
    Kernel(KernelWire),
    Pod(PodFact),
    Endpoint(EndpointFact),
    Service(ServiceFact),
    Node(NodeFact),
    Event(ClusterEvent),
}

#[derive(Serialize, Deserialize)]
struct ExitWire {
    code: Option<i32>,
    signal: Option<i32>,
    core_dumped: bool,
}

#[derive(Serialize, Deserialize)]
struct KernelWire {
    mono_ns: u64,
    wall_ns: i64,
    kind: KernelEventKind,
    node: String,
    tuple: Option<FourTuple>,
    tcp_state: Option<TcpState>,
    new_state: Option<TcpState>,
    reset_reason: Option<String>,
    errno: Option<i32>,
    signal: Option<i32>,
    signal_result: Option<SignalResult>,
    task: Option<TaskRef>,
    target: Option<TaskRef>,
    exit: Option<ExitWire>,
    cgroup_id: Option<u64>,
    pod_uid: Option<String>,
    container_id: Option<String>,
    sock_id: Option<u64>,
    http_status: Option<u16>,
    fd: Option<i32>,
    http_peek_bytes: Option<u8>,
}

impl From<&KernelEvent> for KernelWire {
    fn from(e: &KernelEvent) -> KernelWire {
        KernelWire {
            mono_ns: e.mono_ns,
            wall_ns: e.wall_ns,
            kind: e.kind,
            node: e.node.clone(),
            tuple: e.tuple,
            tcp_state: e.tcp_state,
            new_state: e.new_state,
            reset_reason: e.reset_reason.clone(),
            errno: e.errno,
            signal: e.signal,
            signal_result: e.signal_result,
            task: e.task.clone(),
            target: e.target.clone(),
            exit: e.exit.map(|x| ExitWire {
                code: x.code,
                signal: x.signal,
                core_dumped: x.core_dumped,
            }),
            cgroup_id: e.cgroup_id,
            pod_uid: e.pod_uid.clone(),
            container_id: e.container_id.clone(),
            sock_id: e.sock_id,
            http_status: e.http_status,
            fd: e.fd,
            http_peek_bytes: e.http_peek_bytes,
        }
    }
}

impl From<KernelWire> for KernelEvent {
    fn from(w: KernelWire) -> KernelEvent {
        KernelEvent {
            mono_ns: w.mono_ns,
            wall_ns: w.wall_ns,
            kind: w.kind,
            node: w.node,
            tuple: w.tuple,
            tcp_state: w.tcp_state,
            new_state: w.new_state,
            reset_reason: w.reset_reason,
            errno: w.errno,
            signal: w.signal,
            signal_result: w.signal_result,
            task: w.task,
            target: w.target,
            exit: w.exit.map(|x| ExitStatus {
                code: x.code,
                signal: x.signal,
                core_dumped: x.core_dumped,
            }),
            cgroup_id: w.cgroup_id,
            pod_uid: w.pod_uid,
            container_id: w.container_id,
            sock_id: w.sock_id,
            http_status: w.http_status,
            fd: w.fd,
            http_peek_bytes: w.http_peek_bytes,
        }
    }
}

/// The frozen layout of a proxy-log fact (record type `PROXY_LOG`, 1.1).
#[derive(Serialize, Deserialize)]
struct ProxyLogWire {
    at_ns: i64,
    namespace: String,
    pod: String,
    node: Option<String>,
    precise_time: bool,
    client: IpAddr,
    status: u16,
    request_time_ms: Option<u64>,
    upstream_name: Option<String>,
    upstream_addrs: Vec<SocketAddr>,
    upstream_statuses: Vec<Option<u16>>,
    upstream_response_times_ms: Vec<Option<u64>>,
    format: LogFormat,
}

impl From<&ProxyLogFact> for ProxyLogWire {
    fn from(l: &ProxyLogFact) -> ProxyLogWire {
        ProxyLogWire {
            at_ns: l.at_ns,
            namespace: l.namespace.clone(),
            pod: l.pod.clone(),
            node: l.node.clone(),
            precise_time: l.precise_time,
            client: l.client,
            status: l.status,
            request_time_ms: l.request_time_ms,
            upstream_name: l.upstream_name.clone(),
            upstream_addrs: l.upstream_addrs.clone(),
            upstream_statuses: l.upstream_statuses.clone(),
            upstream_response_times_ms: l.upstream_response_times_ms.clone(),
            format: l.format,
        }
    }
}

impl From<ProxyLogWire> for ProxyLogFact {
    fn from(w: ProxyLogWire) -> ProxyLogFact {
        ProxyLogFact {
            at_ns: w.at_ns,
            namespace: w.namespace,
            pod: w.pod,
            node: w.node,
            precise_time: w.precise_time,
            client: w.client,
            status: w.status,
            request_time_ms: w.request_time_ms,
            upstream_name: w.upstream_name,
            upstream_addrs: w.upstream_addrs,
            upstream_statuses: w.upstream_statuses,
            upstream_response_times_ms: w.upstream_response_times_ms,
            format: w.format,
        }
    }
}

/// Appends the binary form of `fact` to `out`; returns the record type
/// it must be written under.
pub(crate) fn encode_fact(fact: &Fact, out: &mut Vec<u8>) -> Result<u8, postcard::Error> {
    let wire = match fact {
        Fact::ProxyLog(l) => {
            let bytes = postcard::to_stdvec(&ProxyLogWire::from(l))?;
            out.extend_from_slice(&bytes);
            return Ok(tag::PROXY_LOG);
        }
        Fact::Kernel(e) => FactWire::Kernel(e.into()),
        Fact::Pod(p) => FactWire::Pod(p.clone()),
        Fact::Endpoint(e) => FactWire::Endpoint(e.clone()),
        Fact::Service(s) => FactWire::Service(s.clone()),
        Fact::Node(n) => FactWire::Node(n.clone()),
        Fact::Event(e) => FactWire::Event(e.clone()),
    };
    let bytes = postcard::to_stdvec(&wire)?;
    out.extend_from_slice(&bytes);
    Ok(tag::FACT)
}

pub(crate) fn decode_fact(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let wire: FactWire = postcard::from_bytes(bytes)?;
    Ok(match wire {
        FactWire::Kernel(k) => Fact::Kernel(k.into()),
        FactWire::Pod(p) => Fact::Pod(p),
        FactWire::Endpoint(e) => Fact::Endpoint(e),
        FactWire::Service(s) => Fact::Service(s),
        FactWire::Node(n) => Fact::Node(n),
        FactWire::Event(e) => Fact::Event(e),
    })
}

/// Decodes a `PROXY_LOG` record.
pub(crate) fn decode_proxy_log(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let wire: ProxyLogWire = postcard::from_bytes(bytes)?;
    Ok(Fact::ProxyLog(wire.into()))
}
