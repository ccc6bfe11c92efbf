//! Tracefs format fields to the programs' layouts, one function per hook:
//! which fields a hook cannot do without (a missing one disables it) and
//! which it can (a missing one degrades it, with a note saying what is lost).

use std::collections::BTreeMap;

use fivexx_core::capability::HookState;
use tracer_ebpf::{
    AddrLayout, ErrorReportLayout, ExitLayout, FieldLoc, KfreeSkbLayout, OomLayout,
    ReceiveResetLayout, RetransmitLayout, SendResetLayout, SetStateLayout, SignalLayout,
    TracerConfig,
};

use super::HookPlan;
use crate::tracefs::TracepointFormat;

pub(super) type Missing = &'static str;

pub(super) fn loc(fmt: &TracepointFormat, name: &'static str) -> Result<FieldLoc, Missing> {
    fmt.field(name)
        .map(|f| FieldLoc::new(f.offset, f.size))
        .ok_or(name)
}

pub(super) fn opt(fmt: &TracepointFormat, name: &str) -> FieldLoc {
    fmt.field(name)
        .map(|f| FieldLoc::new(f.offset, f.size))
        .unwrap_or(FieldLoc::ABSENT)
}

/// Either separate family/port/address fields, or (6.10+ `tcp_send_reset`)
/// two sockaddr blobs named saddr/daddr of at least sockaddr_in6 size.
pub(super) fn addr(fmt: &TracepointFormat) -> Result<AddrLayout, Missing> {
    let mut a = AddrLayout::EMPTY;
    let saddr = loc(fmt, "saddr")?;
    let daddr = loc(fmt, "daddr")?;
    if fmt.field("family").is_none() && saddr.size >= 24 {
        a.sockaddr_src = saddr;
        a.sockaddr_dst = daddr;
        return Ok(a);
    }
    a.sport = loc(fmt, "sport")?;
    a.dport = loc(fmt, "dport")?;
    a.saddr = saddr;
    a.daddr = daddr;
    a.saddr_v6 = opt(fmt, "saddr_v6");
    a.daddr_v6 = opt(fmt, "daddr_v6");
    // Before 5.12 the tcp tracepoints have no `family`; the programs then
    // tell IPv4 from IPv6 by the v4-mapped form of `saddr_v6`.
    a.family = opt(fmt, "family");
    if !a.family.present() && a.saddr_v6.size < 16 {
        return Err("family");
    }
    Ok(a)
}

/// `skb:kfree_skb`: the drop reason (5.17+) and the value of NO_SOCKET
/// from the format's own symbol table. `send_reset_has_reason`: 6.10+,
/// where `tcp_send_reset` reports NO_SOCKET itself, so this hook would
/// only duplicate it.
pub(super) fn kfree_skb(
    fmt: &TracepointFormat,
    c: &mut TracerConfig,
    plan: &mut HookPlan,
    send_reset_has_reason: bool,
) -> Result<(), Missing> {
    c.kfree_skb = KfreeSkbLayout {
        skbaddr: loc(fmt, "skbaddr")?,
        reason: loc(fmt, "reason")?,
        no_socket: -1,
    };
    let no_socket = fmt
        .symbolic_names("reason")
        .into_iter()
        .find(|(_, name)| name == "NO_SOCKET")
        .and_then(|(v, _)| i32::try_from(v).ok());
    let Some(no_socket) = no_socket else {
        return Err("reason NO_SOCKET");
    };
    plan.kfree_no_socket = Some(no_socket);
    if !c.skb.packet_known() {
        plan.state = HookState::Missing;
        plan.reason = Some(
            "sk_buff/iphdr/ipv6hdr/tcphdr offsets not all found in BTF: a dropped SYN's \
             4-tuple cannot be read"
                .to_string(),
        );
        return Ok(());
    }
    if send_reset_has_reason {
        plan.state = HookState::NotLoaded;
        plan.reason = Some(
            "not needed: tcp_send_reset reports NO_SOCKET itself on this kernel (6.10+), \
             so a refused SYN stays one fact"
                .to_string(),
        );
        return Ok(());
    }
    c.kfree_skb.no_socket = no_socket;
    Ok(())
}

pub(super) fn send_reset(
    fmt: &TracepointFormat,
    c: &mut TracerConfig,
    plan: &mut HookPlan,
    reasons: &mut BTreeMap<u64, String>,
) -> Result<(), Missing> {
    c.send_reset = SendResetLayout {
        skaddr: opt(fmt, "skaddr"),
        state: opt(fmt, "state"),
        reason: opt(fmt, "reason"),
        addr: addr(fmt)?,
    };
    if c.send_reset.reason.present() {
        *reasons = fmt.symbolic_names("reason");
    } else {
        plan.notes.push(
            "no `reason` field (kernel < 6.10): RST reasons unknown, and socket-less RSTs \
             (replies from a closed port) are not traced here; skb:kfree_skb (5.17+) sees \
             the refused SYN on the pod side, and the client side sees tcp_receive_reset \
             in SYN_SENT and error 111"
                .to_string(),
        );
    }
    Ok(())
}

pub(super) fn receive_reset(
    fmt: &TracepointFormat,
    c: &mut TracerConfig,
    plan: &mut HookPlan,
) -> Result<(), Missing> {
    c.receive_reset = ReceiveResetLayout {
        skaddr: loc(fmt, "skaddr")?,
        addr: addr(fmt)?,
    };
    if c.kernel.sock_state < 0 {
        plan.notes.push(
            "sock_common.skc_state not found in BTF: the TCP state of a reset socket (and so \
             refused vs reset) is unknown"
                .to_string(),
        );
    }
    Ok(())
}

pub(super) fn error_report(fmt: &TracepointFormat, c: &mut TracerConfig) -> Result<(), Missing> {
    c.error_report = ErrorReportLayout {
        error: loc(fmt, "error")?,
        protocol: loc(fmt, "protocol")?,
        addr: addr(fmt)?,
    };
    Ok(())
}

pub(super) fn set_state(fmt: &TracepointFormat, c: &mut TracerConfig) -> Result<(), Missing> {
    c.set_state = SetStateLayout {
        skaddr: opt(fmt, "skaddr"),
        oldstate: loc(fmt, "oldstate")?,
        newstate: loc(fmt, "newstate")?,
        protocol: loc(fmt, "protocol")?,
        addr: addr(fmt)?,
    };
    Ok(())
}

pub(super) fn retransmit(fmt: &TracepointFormat, c: &mut TracerConfig) -> Result<(), Missing> {
    c.retransmit = RetransmitLayout {
        skaddr: opt(fmt, "skaddr"),
        state: loc(fmt, "state")?,
        addr: addr(fmt)?,
    };
    Ok(())
}

pub(super) fn signal(fmt: &TracepointFormat, c: &mut TracerConfig) -> Result<(), Missing> {
    c.signal = SignalLayout {
        sig: loc(fmt, "sig")?,
        code: opt(fmt, "code"),
        comm: opt(fmt, "comm"),
        pid: loc(fmt, "pid")?,
        group: opt(fmt, "group"),
        result: opt(fmt, "result"),
    };
    Ok(())
}

pub(super) fn exit(
    fmt: &TracepointFormat,
    c: &mut TracerConfig,
    plan: &mut HookPlan,
) -> Result<(), Missing> {
    c.exit = ExitLayout {
        comm: opt(fmt, "comm"),
        pid: loc(fmt, "pid")?,
        group_dead: opt(fmt, "group_dead"),
    };
    let k = &c.kernel;
    if !c.exit.group_dead.present() && (k.task_signal < 0 || k.signal_live < 0) {
        plan.notes.push(
            "no `group_dead` field and no signal_struct.live in BTF: a process exit is \
             inferred from its main thread exiting"
                .to_string(),
        );
    }
    if k.task_exit_code < 0 {
        plan.notes
            .push("task_struct.exit_code not found in BTF: exit codes unknown".to_string());
    }
    Ok(())
}

/// The HTTP peek's syscalls: fd, the buffer (or iovec, or msghdr) and its length.
pub(super) fn http(
    fmt: &TracepointFormat,
    name: &str,
    c: &mut TracerConfig,
    plan: &mut HookPlan,
) -> Result<(), Missing> {
    let (ptr, len) = match name {
        "sys_enter_write" => ("buf", Some("count")),
        "sys_enter_writev" => ("vec", Some("vlen")),
        "sys_enter_sendto" => ("buff", Some("len")),
        _ => ("msg", None),
    };
    let layout = tracer_ebpf::WriteLayout {
        fd: loc(fmt, "fd")?,
        ptr: fmt
            .field(ptr)
            .map(|f| FieldLoc::new(f.offset, f.size))
            .ok_or("buffer pointer")?,
        len: match len {
            Some(l) => fmt
                .field(l)
                .map(|f| FieldLoc::new(f.offset, f.size))
                .ok_or("length")?,
            None => FieldLoc::ABSENT,
        },
    };
    match name {
        "sys_enter_write" => c.http.write = layout,
        "sys_enter_writev" => c.http.writev = layout,
        "sys_enter_sendto" => c.http.sendto = layout,
        _ => c.http.sendmsg = layout,
    }
    let k = &c.kernel;
    if [
        k.task_files,
        k.files_fdt,
        k.fdt_fd,
        k.file_private_data,
        k.socket_sk,
        k.sock_family,
    ]
    .iter()
    .any(|o| *o < 0)
    {
        plan.notes.push(
            "fd -> socket offsets not found in BTF: 5xx responses carry no 4-tuple".to_string(),
        );
    }
    Ok(())
}

pub(super) fn oom(fmt: &TracepointFormat, c: &mut TracerConfig) -> Result<(), Missing> {
    c.oom = OomLayout {
        pid: loc(fmt, "pid")?,
        comm_loc: opt(fmt, "comm"),
    };
    Ok(())
}
