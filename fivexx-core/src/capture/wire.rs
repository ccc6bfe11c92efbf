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
//!
//! This file is longer than 600 lines because every frozen mirror and its
//! hand-written decoder belong side by side: a layout change must show in
//! one diff.

use crate::event::{
    Errno, ExitStatus, FourTuple, KernelEvent, KernelEventKind, ResetReason, SignalResult, TaskRef,
    TcpState,
};
use crate::model::{
    AgentGoneFact, ClusterEvent, EndpointFact, Fact, HttpPeekFact, NodeFact, PodFact, ProxyLogFact,
    ServiceFact,
};
use crate::proxylog::{LogFormat, ProxyAccount, ProxyWords, UpstreamTry};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use super::tag;

/// The frozen layout of a `FACT` record: every fact but the ones with
/// record types of their own. Encoding borrows from the fact (nothing is
/// cloned per record); decoding borrows the kernel event's strings from
/// the record and copies them into a reused event.
#[derive(Serialize, Deserialize)]
enum FactWire<'a> {
    #[serde(borrow)]
    Kernel(KernelWire<'a>),
    Pod(Cow<'a, PodFact>),
    Endpoint(Cow<'a, EndpointFact>),
    Service(Cow<'a, ServiceFact>),
    Node(Cow<'a, NodeFact>),
    Event(Cow<'a, ClusterEvent>),
}

/// [`ExitStatus`] with every field present (postcard cannot skip).
#[derive(Clone, Copy, Serialize, Deserialize)]
struct ExitWire {
    code: Option<i32>,
    signal: Option<i32>,
    core_dumped: bool,
}

impl From<ExitStatus> for ExitWire {
    fn from(x: ExitStatus) -> ExitWire {
        ExitWire {
            code: x.code,
            signal: x.signal,
            core_dumped: x.core_dumped,
        }
    }
}

impl From<ExitWire> for ExitStatus {
    fn from(x: ExitWire) -> ExitStatus {
        ExitStatus {
            code: x.code,
            signal: x.signal,
            core_dumped: x.core_dumped,
        }
    }
}

/// [`TaskRef`]'s layout, borrowed.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct TaskWire<'a> {
    pid: i32,
    comm: &'a str,
}

impl<'a> From<&'a TaskRef> for TaskWire<'a> {
    fn from(t: &'a TaskRef) -> TaskWire<'a> {
        TaskWire {
            pid: t.pid,
            comm: &t.comm,
        }
    }
}

/// The one mirror of [`KernelEvent`]'s binary layout, borrowed both ways.
/// [`Cursor::kernel_into`] reads the same layout directly (and is tested
/// against this type's serde decoding).
#[derive(Serialize, Deserialize)]
struct KernelWire<'a> {
    mono_ns: u64,
    wall_ns: i64,
    kind: KernelEventKind,
    node: &'a str,
    tuple: Option<FourTuple>,
    tcp_state: Option<TcpState>,
    new_state: Option<TcpState>,
    #[serde(borrow)]
    reset_reason: Option<&'a str>,
    /// Older agents wrote 0 for none: read as `None`.
    #[serde(deserialize_with = "Errno::deserialize_kernel")]
    errno: Option<Errno>,
    signal: Option<i32>,
    signal_result: Option<SignalResult>,
    #[serde(borrow)]
    task: Option<TaskWire<'a>>,
    #[serde(borrow)]
    target: Option<TaskWire<'a>>,
    exit: Option<ExitWire>,
    cgroup_id: Option<u64>,
    #[serde(borrow)]
    pod_uid: Option<&'a str>,
    #[serde(borrow)]
    container_id: Option<&'a str>,
    sock_id: Option<u64>,
    http_status: Option<u16>,
    fd: Option<i32>,
    http_peek_bytes: Option<u8>,
    /// Format 1.3: at the end, absent in older records.
    syn_sent_ns: Tail<i64>,
    /// Format 1.4: after it, absent in older records.
    idle_us: Tail<u64>,
}

/// An optional field at the end of a record, added by a later minor
/// version: an older record ends before it, which reads as `None`. Frames
/// carry their own CRC, so an end here is the format's, not damage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tail<T>(Option<T>);

impl<T: Serialize> Serialize for Tail<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tail<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Tail(Option::<T>::deserialize(d).unwrap_or(None)))
    }
}

impl<'a> From<&'a KernelEvent> for KernelWire<'a> {
    fn from(e: &'a KernelEvent) -> KernelWire<'a> {
        KernelWire {
            mono_ns: e.mono_ns,
            wall_ns: e.wall_ns,
            kind: e.kind,
            node: &e.node,
            tuple: e.tuple,
            tcp_state: e.tcp_state,
            new_state: e.new_state,
            reset_reason: e.reset_reason.as_ref().map(ResetReason::as_str),
            errno: e.errno,
            signal: e.signal,
            signal_result: e.signal_result,
            task: e.task.as_ref().map(TaskWire::from),
            target: e.target.as_ref().map(TaskWire::from),
            exit: e.exit.map(ExitWire::from),
            cgroup_id: e.cgroup_id,
            pod_uid: e.pod_uid.as_deref(),
            container_id: e.container_id.as_deref(),
            sock_id: e.sock_id,
            http_status: e.http_status,
            fd: e.fd,
            http_peek_bytes: e.http_peek_bytes,
            syn_sent_ns: Tail(e.syn_sent_ns),
            idle_us: Tail(e.idle_us),
        }
    }
}

/// The frozen layout of a proxy-log fact of formats 1.1 to 1.5 (record
/// type `PROXY_LOG`), read only: 1.6 writes the proxy's account instead
/// (`PROXY_ACCOUNT`). 1.4 added the Envoy and HAProxy formats and the
/// fields at the end, 1.5 the client's port. That layout had no way to
/// say "no client" but the unspecified address, which reads as `None`;
/// the words it kept raw are read by their format's module, as a fresh
/// line's are.
#[derive(Deserialize)]
struct LegacyProxyLogWire {
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
    /// The index of the format in 1.5's list, which the registry's ids
    /// keep.
    format: u32,
    flags: Tail<String>,
    server: Tail<String>,
    retries: Tail<u32>,
    redispatched: Tail<bool>,
    upstream_local: Tail<SocketAddr>,
    client_port: Tail<u16>,
}

impl LegacyProxyLogWire {
    fn into_fact(self) -> Result<ProxyLogFact, postcard::Error> {
        let format = u8::try_from(self.format)
            .ok()
            .and_then(LogFormat::from_id)
            .ok_or(postcard::Error::DeserializeBadEnum)?;
        let mut account = ProxyAccount::new(format, self.at_ns, self.status);
        account.precise_time = self.precise_time;
        account.client = Some(self.client).filter(|c| !c.is_unspecified());
        account.client_port = self.client_port.0;
        account.request_time_ms = self.request_time_ms;
        account.upstream_name = self.upstream_name;
        account.tries = self
            .upstream_addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| UpstreamTry {
                addr: *addr,
                status: self.upstream_statuses.get(i).copied().flatten(),
                response_ms: self.upstream_response_times_ms.get(i).copied().flatten(),
            })
            .collect();
        account.upstream_local = self.upstream_local.0;
        account.words = self.flags.0.and_then(|flags| {
            ProxyWords::read(
                format.proxy(),
                &flags,
                self.server.0,
                self.retries.0,
                self.redispatched.0.unwrap_or(false),
            )
        });
        Ok(ProxyLogFact {
            namespace: self.namespace,
            pod: self.pod,
            node: self.node,
            account,
        })
    }
}

/// The frozen layout of an HTTP-peek-start fact (record type `HTTP_PEEK`, 1.2).
#[derive(Serialize, Deserialize)]
struct HttpPeekWire {
    at_ns: i64,
    namespace: String,
    pod: String,
    node: String,
    proxy_ip: IpAddr,
}

impl From<&HttpPeekFact> for HttpPeekWire {
    fn from(p: &HttpPeekFact) -> HttpPeekWire {
        HttpPeekWire {
            at_ns: p.at_ns,
            namespace: p.namespace.clone(),
            pod: p.pod.clone(),
            node: p.node.clone(),
            proxy_ip: p.proxy_ip,
        }
    }
}

impl From<HttpPeekWire> for HttpPeekFact {
    fn from(w: HttpPeekWire) -> HttpPeekFact {
        HttpPeekFact {
            at_ns: w.at_ns,
            namespace: w.namespace,
            pod: w.pod,
            node: w.node,
            proxy_ip: w.proxy_ip,
        }
    }
}

/// The frozen layout of an agent-gone fact (record type `AGENT_GONE`, 1.5).
#[derive(Serialize, Deserialize)]
struct AgentGoneWire {
    at_ns: i64,
    node: String,
    reason: String,
    last_heard_ns: Option<i64>,
}

impl From<&AgentGoneFact> for AgentGoneWire {
    fn from(g: &AgentGoneFact) -> AgentGoneWire {
        AgentGoneWire {
            at_ns: g.at_ns,
            node: g.node.clone(),
            reason: g.reason.clone(),
            last_heard_ns: g.last_heard_ns,
        }
    }
}

/// Decodes an `AGENT_GONE` record.
pub(crate) fn decode_agent_gone(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let w: AgentGoneWire = postcard::from_bytes(bytes)?;
    Ok(Fact::AgentGone(AgentGoneFact {
        at_ns: w.at_ns,
        node: w.node,
        reason: w.reason,
        last_heard_ns: w.last_heard_ns,
    }))
}

/// Appends the binary form of `fact` to `out`; returns the record type
/// it must be written under.
pub(crate) fn encode_fact(fact: &Fact, out: &mut Vec<u8>) -> Result<u8, postcard::Error> {
    let wire = match fact {
        Fact::ProxyLog(l) => {
            // Self-describing: the account gains fields without a new
            // layout, and proxy lines are few next to kernel facts.
            serde_json::to_writer(&mut *out, l)
                .map_err(|_| postcard::Error::SerializeBufferFull)?;
            return Ok(tag::PROXY_ACCOUNT);
        }
        Fact::HttpPeek(p) => {
            let bytes = postcard::to_stdvec(&HttpPeekWire::from(p))?;
            out.extend_from_slice(&bytes);
            return Ok(tag::HTTP_PEEK);
        }
        Fact::AgentGone(g) => {
            let bytes = postcard::to_stdvec(&AgentGoneWire::from(g))?;
            out.extend_from_slice(&bytes);
            return Ok(tag::AGENT_GONE);
        }
        Fact::Kernel(e) => FactWire::Kernel(e.into()),
        Fact::Pod(p) => FactWire::Pod(Cow::Borrowed(p)),
        Fact::Endpoint(e) => FactWire::Endpoint(Cow::Borrowed(e)),
        Fact::Service(s) => FactWire::Service(Cow::Borrowed(s)),
        Fact::Node(n) => FactWire::Node(Cow::Borrowed(n)),
        Fact::Event(e) => FactWire::Event(Cow::Borrowed(e)),
    };
    let bytes = postcard::to_stdvec(&wire)?;
    out.extend_from_slice(&bytes);
    Ok(tag::FACT)
}

pub(crate) fn decode_fact(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let mut e = KernelEvent::new(KernelEventKind::Exit, 0, 0);
    if Cursor(bytes).kernel_into(&mut e).is_some() {
        return Ok(Fact::Kernel(e));
    }
    decode_fact_serde(bytes)
}

/// The serde decoding of a fact record: the reference the direct kernel
/// decoder falls back to (and is tested against).
fn decode_fact_serde(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let wire: FactWire<'_> = postcard::from_bytes(bytes)?;
    Ok(wire.into_fact(None))
}

impl FactWire<'_> {
    /// The fact, its kernel event written over `reuse` (keeping its string
    /// buffers) when one is lent.
    fn into_fact(self, reuse: Option<KernelEvent>) -> Fact {
        match self {
            FactWire::Kernel(k) => {
                let mut e = reuse.unwrap_or_else(|| KernelEvent::new(k.kind, 0, 0));
                k.fill(&mut e);
                Fact::Kernel(e)
            }
            FactWire::Pod(p) => Fact::Pod(p.into_owned()),
            FactWire::Endpoint(e) => Fact::Endpoint(e.into_owned()),
            FactWire::Service(s) => Fact::Service(s.into_owned()),
            FactWire::Node(n) => Fact::Node(n.into_owned()),
            FactWire::Event(e) => Fact::Event(e.into_owned()),
        }
    }
}

fn set_str(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

fn set_opt_str(dst: &mut Option<String>, src: Option<&str>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => set_str(d, s),
        (None, Some(s)) => *dst = Some(s.to_owned()),
        (_, None) => *dst = None,
    }
}

fn set_task(dst: &mut Option<TaskRef>, src: Option<TaskWire<'_>>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => {
            d.pid = s.pid;
            set_str(&mut d.comm, s.comm);
        }
        (None, Some(s)) => {
            *dst = Some(TaskRef {
                pid: s.pid,
                comm: s.comm.to_owned(),
            })
        }
        (_, None) => *dst = None,
    }
}

impl KernelWire<'_> {
    /// Overwrites every field of `e`, reusing its string buffers.
    fn fill(&self, e: &mut KernelEvent) {
        e.mono_ns = self.mono_ns;
        e.wall_ns = self.wall_ns;
        e.kind = self.kind;
        set_str(&mut e.node, self.node);
        e.tuple = self.tuple;
        e.tcp_state = self.tcp_state;
        e.new_state = self.new_state;
        set_reason(&mut e.reset_reason, self.reset_reason);
        e.errno = self.errno;
        e.signal = self.signal;
        e.signal_result = self.signal_result;
        set_task(&mut e.task, self.task);
        set_task(&mut e.target, self.target);
        e.exit = self.exit.map(ExitStatus::from);
        e.cgroup_id = self.cgroup_id;
        set_opt_str(&mut e.pod_uid, self.pod_uid);
        set_opt_str(&mut e.container_id, self.container_id);
        e.sock_id = self.sock_id;
        e.http_status = self.http_status;
        e.fd = self.fd;
        e.http_peek_bytes = self.http_peek_bytes;
        e.syn_sent_ns = self.syn_sent_ns.0;
        e.idle_us = self.idle_us.0;
    }
}

/// A reset reason from its kernel name, allocating only for a name this
/// build does not know.
fn set_reason(dst: &mut Option<ResetReason>, src: Option<&str>) {
    *dst = src.map(ResetReason::from_name);
}

/// A direct reader of postcard's encoding of [`KernelWire`], the bulk of
/// every capture: serde's generic path costs several times more per fact.
/// It accepts exactly what postcard accepts or gives up (`None`), and then
/// the caller decodes with serde, which gives the same error postcard
/// would. Trailing bytes are ignored, as `postcard::from_bytes` does.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// postcard's varint of a `BYTES`-byte integer: at most as many bytes
    /// as it takes, and no bits beyond the type in the last one.
    #[inline(always)]
    fn varint<const BYTES: usize>(&mut self) -> Option<u64> {
        let max = (BYTES * 8).div_ceil(7);
        let max_last = (1u8 << ((BYTES * 8) % 7)) - 1;
        // One byte is the common case (small numbers, option tags).
        let b = self.byte()?;
        if b & 0x80 == 0 {
            return Some(u64::from(b));
        }
        let mut out = u64::from(b & 0x7f);
        for i in 1..max {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return (i + 1 < max || b <= max_last).then_some(out);
            }
        }
        None
    }

    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        self.varint::<8>()
    }

    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        self.varint::<4>().map(|v| v as u32)
    }

    #[inline(always)]
    fn u16(&mut self) -> Option<u16> {
        self.varint::<2>().map(|v| v as u16)
    }

    #[inline(always)]
    fn i64(&mut self) -> Option<i64> {
        let v = self.u64()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    #[inline(always)]
    fn i32(&mut self) -> Option<i32> {
        let v = self.u32()?;
        Some((v >> 1) as i32 ^ -((v & 1) as i32))
    }

    #[inline(always)]
    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// An `Option`'s tag, then the value.
    #[inline(always)]
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.bool()? {
            f(self).map(Some)
        } else {
            Some(None)
        }
    }

    #[inline(always)]
    fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.u64()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    #[inline(always)]
    fn ip(&mut self) -> Option<IpAddr> {
        match self.u32()? {
            0 => {
                let b: [u8; 4] = self.take(4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            }
            1 => {
                let b: [u8; 16] = self.take(16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            }
            _ => None,
        }
    }

    #[inline(always)]
    fn tuple(&mut self) -> Option<FourTuple> {
        Some(FourTuple {
            saddr: self.ip()?,
            sport: self.u16()?,
            daddr: self.ip()?,
            dport: self.u16()?,
        })
    }

    #[inline(always)]
    fn kind(&mut self) -> Option<KernelEventKind> {
        KernelEventKind::ALL.get(self.u32()? as usize).copied()
    }

    #[inline(always)]
    fn tcp_state(&mut self) -> Option<TcpState> {
        // Variant index i is the kernel's state i + 1.
        TcpState::from_kernel(u8::try_from(self.u32()?.checked_add(1)?).ok()?)
    }

    #[inline(always)]
    fn signal_result(&mut self) -> Option<SignalResult> {
        const ALL: [SignalResult; 6] = [
            SignalResult::Delivered,
            SignalResult::Ignored,
            SignalResult::AlreadyPending,
            SignalResult::OverflowFail,
            SignalResult::LoseInfo,
            SignalResult::Unknown,
        ];
        ALL.get(self.u32()? as usize).copied()
    }

    #[inline(always)]
    fn task(&mut self) -> Option<TaskWire<'a>> {
        Some(TaskWire {
            pid: self.i32()?,
            comm: self.str()?,
        })
    }

    #[inline(always)]
    fn exit(&mut self) -> Option<ExitWire> {
        Some(ExitWire {
            code: self.opt(Self::i32)?,
            signal: self.opt(Self::i32)?,
            core_dumped: self.bool()?,
        })
    }

    /// Decodes a `FactWire::Kernel` record into `e`, reusing its strings;
    /// `None` for anything else (then `e` is partly overwritten).
    fn kernel_into(mut self, e: &mut KernelEvent) -> Option<()> {
        if self.u32()? != 0 {
            return None;
        }
        e.mono_ns = self.u64()?;
        e.wall_ns = self.i64()?;
        e.kind = self.kind()?;
        set_str(&mut e.node, self.str()?);
        e.tuple = self.opt(Self::tuple)?;
        e.tcp_state = self.opt(Self::tcp_state)?;
        e.new_state = self.opt(Self::tcp_state)?;
        set_reason(&mut e.reset_reason, self.opt(Self::str)?);
        e.errno = self.opt(Self::i32)?.and_then(Errno::from_kernel);
        e.signal = self.opt(Self::i32)?;
        e.signal_result = self.opt(Self::signal_result)?;
        set_task(&mut e.task, self.opt(Self::task)?);
        set_task(&mut e.target, self.opt(Self::task)?);
        e.exit = self.opt(Self::exit)?.map(ExitStatus::from);
        e.cgroup_id = self.opt(Self::u64)?;
        set_opt_str(&mut e.pod_uid, self.opt(Self::str)?);
        set_opt_str(&mut e.container_id, self.opt(Self::str)?);
        e.sock_id = self.opt(Self::u64)?;
        e.http_status = self.opt(Self::u16)?;
        e.fd = self.opt(Self::i32)?;
        e.http_peek_bytes = self.opt(Self::byte)?;
        // 1.3's trailing field; a 1.2 record ends here.
        e.syn_sent_ns = if self.0.is_empty() {
            None
        } else {
            self.opt(Self::i64)?
        };
        // 1.4's; a 1.3 record ends here.
        e.idle_us = if self.0.is_empty() {
            None
        } else {
            self.opt(Self::u64)?
        };
        Some(())
    }
}

/// Decodes a `FACT` record into `slot`, reusing the strings of the kernel
/// event already there (or of `spare`, a kernel event put aside when an
/// API fact took the slot). On error the kernel event in `slot` (or
/// `spare`) may be partly overwritten: it is only lent out after a
/// successful decode, which sets every field.
pub(crate) fn decode_fact_into(
    bytes: &[u8],
    slot: &mut Option<Fact>,
    spare: &mut Option<KernelEvent>,
) -> Result<(), postcard::Error> {
    // The common case: a kernel fact over the kernel fact before it.
    if let Some(Fact::Kernel(e)) = slot {
        if Cursor(bytes).kernel_into(e).is_some() {
            return Ok(());
        }
    } else {
        let mut e = spare
            .take()
            .unwrap_or_else(|| KernelEvent::new(KernelEventKind::Exit, 0, 0));
        if Cursor(bytes).kernel_into(&mut e).is_some() {
            put(slot, spare, Fact::Kernel(e));
            return Ok(());
        }
        *spare = Some(e);
    }
    let wire: FactWire<'_> = postcard::from_bytes(bytes)?;
    if let (FactWire::Kernel(k), Some(Fact::Kernel(e))) = (&wire, slot.as_mut()) {
        k.fill(e);
        return Ok(());
    }
    let fact = wire.into_fact(spare.take());
    put(slot, spare, fact);
    Ok(())
}

/// Puts `fact` in `slot`, keeping the kernel event it replaces as `spare`.
pub(crate) fn put(slot: &mut Option<Fact>, spare: &mut Option<KernelEvent>, fact: Fact) {
    if let Some(Fact::Kernel(old)) = slot.replace(fact) {
        *spare = Some(old);
    }
}

/// Decodes an `HTTP_PEEK` record.
pub(crate) fn decode_http_peek(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let wire: HttpPeekWire = postcard::from_bytes(bytes)?;
    Ok(Fact::HttpPeek(wire.into()))
}

/// Decodes a `PROXY_LOG` record (formats 1.1 to 1.5).
pub(crate) fn decode_proxy_log(bytes: &[u8]) -> Result<Fact, postcard::Error> {
    let wire: LegacyProxyLogWire = postcard::from_bytes(bytes)?;
    Ok(Fact::ProxyLog(wire.into_fact()?))
}

/// Decodes a `PROXY_ACCOUNT` record (format 1.6).
pub(crate) fn decode_proxy_account(bytes: &[u8]) -> Result<Fact, serde_json::Error> {
    Ok(Fact::ProxyLog(serde_json::from_slice(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KernelEvent;
    use std::net::Ipv6Addr;

    /// Kernel events with every field exercised: set, unset, extremes, v6.
    fn events() -> Vec<KernelEvent> {
        let mut out = Vec::new();
        for (i, kind) in KernelEventKind::ALL.into_iter().enumerate() {
            out.push(KernelEvent::new(kind, i as u64, -(i as i64)));
            let mut e = KernelEvent::new(kind, u64::MAX - i as u64, i64::MIN + i as i64);
            e.node = format!("node-{i}-é");
            e.tuple = Some(FourTuple {
                saddr: if i % 2 == 0 {
                    IpAddr::from([10, 0, 0, i as u8])
                } else {
                    IpAddr::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16))
                },
                sport: u16::MAX - i as u16,
                daddr: IpAddr::from([192, 168, 1, 2]),
                dport: i as u16 * 300,
            });
            e.tcp_state = TcpState::from_kernel(i as u8 + 1);
            e.new_state = TcpState::from_kernel(12 - i as u8);
            e.reset_reason = match i % 3 {
                0 => None,
                1 => Some(ResetReason::NoSocket),
                _ => Some(ResetReason::from_name("TCP_ABORT_ON_CLOSE")),
            };
            e.errno = Errno::from_kernel(if i % 2 == 0 { 111 } else { i32::MAX - i as i32 });
            e.signal = Some(i32::MAX - i as i32);
            e.signal_result = Some(SignalResult::from_kernel(i as i32));
            e.task = Some(TaskRef {
                pid: -(i as i32),
                comm: "containerd-shim".into(),
            });
            e.target = (i % 2 == 1).then(|| TaskRef {
                pid: 1 << 20,
                comm: String::new(),
            });
            e.exit = Some(ExitStatus {
                code: (i % 2 == 0).then_some(i as i32),
                signal: (i % 2 == 1).then_some(9),
                core_dumped: i % 4 == 1,
            });
            e.cgroup_id = Some(1 << (i * 7));
            e.pod_uid = Some(format!("uid-{i}"));
            e.container_id = (i % 2 == 0).then(|| "c".repeat(200));
            e.sock_id = Some(u64::MAX >> i);
            e.http_status = Some(if i % 2 == 0 { 502 } else { u16::MAX });
            e.fd = Some(-1);
            e.http_peek_bytes = Some(255 - i as u8);
            e.syn_sent_ns = (i % 3 != 1).then_some(i64::MIN + i as i64);
            e.idle_us = (i % 4 != 2).then_some(u64::MAX >> (i * 3));
            out.push(e);
        }
        out.extend(
            crate::testkit::synth::bench_stream(400).filter_map(|f| match f {
                Fact::Kernel(e) => Some(e),
                _ => None,
            }),
        );
        out
    }

    #[test]
    fn direct_kernel_decoding_matches_serde() {
        let mut slot = None;
        let mut spare = None;
        for e in events() {
            let fact = Fact::Kernel(e);
            let mut bytes = Vec::new();
            encode_fact(&fact, &mut bytes).unwrap();
            assert!(Cursor(&bytes)
                .kernel_into(&mut KernelEvent::new(KernelEventKind::Exit, 0, 0))
                .is_some());
            assert_eq!(decode_fact(&bytes).unwrap(), fact);
            assert_eq!(decode_fact_serde(&bytes).unwrap(), fact);
            decode_fact_into(&bytes, &mut slot, &mut spare).unwrap();
            assert_eq!(slot.as_ref(), Some(&fact));
        }
    }

    #[test]
    fn a_record_of_format_1_3_reads_with_no_idle_time() {
        // 1.3 wrote the same layout without the last field: drop it.
        for e in events() {
            let mut e = e;
            e.idle_us = None;
            let fact = Fact::Kernel(e);
            let mut bytes = Vec::new();
            encode_fact(&fact, &mut bytes).unwrap();
            assert_eq!(bytes.pop(), Some(0), "None is one 0 byte");
            assert_eq!(decode_fact(&bytes).unwrap(), fact);
            assert_eq!(decode_fact_serde(&bytes).unwrap(), fact);
            let (mut slot, mut spare) = (None, None);
            decode_fact_into(&bytes, &mut slot, &mut spare).unwrap();
            assert_eq!(slot.as_ref(), Some(&fact));
        }
    }

    #[test]
    fn a_record_of_format_1_2_reads_with_no_syn_time() {
        // 1.2 wrote the same layout without the two trailing fields.
        for e in events() {
            let mut e = e;
            e.syn_sent_ns = None;
            e.idle_us = None;
            let fact = Fact::Kernel(e);
            let mut bytes = Vec::new();
            encode_fact(&fact, &mut bytes).unwrap();
            assert_eq!(bytes.pop(), Some(0), "None is one 0 byte");
            assert_eq!(bytes.pop(), Some(0), "None is one 0 byte");
            assert_eq!(decode_fact(&bytes).unwrap(), fact);
            assert_eq!(decode_fact_serde(&bytes).unwrap(), fact);
            let (mut slot, mut spare) = (None, None);
            decode_fact_into(&bytes, &mut slot, &mut spare).unwrap();
            assert_eq!(slot.as_ref(), Some(&fact));
        }
    }

    #[test]
    fn damaged_records_decode_as_serde_does() {
        for e in events().into_iter().take(24) {
            let mut bytes = Vec::new();
            encode_fact(&Fact::Kernel(e), &mut bytes).unwrap();
            let mut variants: Vec<Vec<u8>> =
                (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
            for i in 0..bytes.len() {
                for x in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[i] = x;
                    variants.push(b);
                }
            }
            for b in variants {
                let want = decode_fact_serde(&b).map_err(|e| e.to_string());
                assert_eq!(decode_fact(&b).map_err(|e| e.to_string()), want);
                let mut slot = Some(Fact::Kernel(KernelEvent::new(KernelEventKind::Exit, 1, 2)));
                let mut spare = None;
                let got = decode_fact_into(&b, &mut slot, &mut spare).map_err(|e| e.to_string());
                match want {
                    Ok(f) => assert_eq!(slot, Some(f)),
                    Err(w) => assert_eq!(got, Err(w)),
                }
            }
        }
    }
}
