//! Maps, the configuration global, and the helpers every probe shares:
//! counted ring-buffer emission and layout-driven field reads.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use tracer_ebpf::{AddrLayout, EventKind, FieldLoc, RawEvent, TracerConfig, KIND_COUNT};

/// Filled in by the agent before load (`EbpfLoader::override_global`).
// SAFETY: the agent finds the global by this exact name (CONFIG_SYMBOL),
// and no other symbol in the object is named FIVEXX_CONFIG.
#[unsafe(no_mangle)]
pub static FIVEXX_CONFIG: TracerConfig = TracerConfig::EMPTY;

/// Default size; the agent overrides it (`--ring-bytes`).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

#[map(name = "GENERATED")]
pub static GENERATED: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT as u32, 0);

#[map(name = "DROPPED")]
pub static DROPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT as u32, 0);

#[map(name = "STATE_COUNTS")]
pub static STATE_COUNTS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(tracer_ebpf::STATE_COUNTS_LEN, 0);

/// The configuration as the verifier sees it: a volatile read, so the
/// compiler cannot fold the all-absent default into the code.
#[inline(always)]
pub fn config() -> &'static TracerConfig {
    // SAFETY: the volatile read is of a local holding the address of a
    // static, so it is valid and aligned; the static lives for the whole
    // program and the kernel never writes it after load (read-only data),
    // so a shared 'static reference to it is sound.
    unsafe { &*core::ptr::read_volatile(&(&FIVEXX_CONFIG as *const TracerConfig)) }
}

#[inline(always)]
pub fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(p) = map.get_ptr_mut(index) {
        // SAFETY: `p` comes from a successful map lookup, so it points to a
        // live, aligned u64 for the rest of this program run, and the slot
        // is this CPU's own copy. A program nested on this CPU (an interrupt
        // running another hook) could interleave the read and the write and
        // lose one count: a skewed counter, never an invalid access.
        unsafe { *p += 1 };
    }
}

/// Reserves a record, lets `fill` write it, and submits it. Every attempt is
/// counted in GENERATED and every failed reservation in DROPPED, so that
/// "received + dropped = generated" holds per kind.
#[inline(always)]
pub fn emit(kind: EventKind, fill: impl FnOnce(&mut RawEvent)) {
    bump(&GENERATED, kind as u32);
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        bump(&DROPPED, kind as u32);
        return;
    };
    let ev = entry.write(RawEvent::zeroed());
    ev.kind = kind as u8;
    // SAFETY: a helper that takes no arguments and touches no memory of ours.
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    ev.task_pid = pid_tgid as u32;
    ev.task_tgid = (pid_tgid >> 32) as u32;
    // SAFETY: a helper that takes no arguments and touches no memory of ours.
    ev.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if let Ok(comm) = bpf_get_current_comm() {
        ev.task_comm = comm;
    }
    fill(ev);
    entry.submit(0);
}

/// Reads an unsigned integer field of 1, 2, 4 or 8 bytes; `None` if absent.
#[inline(always)]
pub fn read_uint(ctx: &TracePointContext, f: FieldLoc) -> Option<u64> {
    let off = f.offset as usize;
    // SAFETY: read_at copies from the tracepoint record through
    // bpf_probe_read_kernel into a value of the requested integer type: an
    // offset outside the record (a wrong layout) is an error, never a fault,
    // and every bit pattern is a valid integer.
    unsafe {
        match f.size {
            1 => ctx.read_at::<u8>(off).ok().map(|v| v as u64),
            2 => ctx.read_at::<u16>(off).ok().map(|v| v as u64),
            4 => ctx.read_at::<u32>(off).ok().map(|v| v as u64),
            8 => ctx.read_at::<u64>(off).ok(),
            _ => None,
        }
    }
}

#[inline(always)]
pub fn read_i32(ctx: &TracePointContext, f: FieldLoc) -> Option<i32> {
    read_uint(ctx, f).map(|v| v as i32)
}

#[inline(always)]
pub fn read_comm(ctx: &TracePointContext, f: FieldLoc, out: &mut [u8; 16]) {
    if f.size >= 16 {
        // SAFETY: a checked kernel read (bpf_probe_read_kernel) into a byte
        // array, for which any bit pattern is valid; a bad offset is an error.
        if let Ok(c) = unsafe { ctx.read_at::<[u8; 16]>(f.offset as usize) } {
            *out = c;
        }
    }
}

/// Reads a kernel struct member at a BTF-discovered offset from `base`.
#[inline(always)]
pub fn read_kernel<T>(base: u64, offset: i32) -> Option<T> {
    if base == 0 || offset < 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-checked
    // path, so a wrong address is an error, not a fault; callers only ask for
    // integer and byte-array types, for which any bit pattern is valid.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// Fills family, ports and addresses from whichever layout the kernel uses.
#[inline(always)]
pub fn read_addrs(ctx: &TracePointContext, a: &AddrLayout, ev: &mut RawEvent) {
    if a.sockaddr_src.present() {
        read_sockaddr(
            ctx,
            a.sockaddr_src,
            &mut ev.family,
            &mut ev.sport,
            &mut ev.saddr,
        );
        read_sockaddr(
            ctx,
            a.sockaddr_dst,
            &mut ev.family,
            &mut ev.dport,
            &mut ev.daddr,
        );
        return;
    }
    let family = if a.family.present() {
        read_uint(ctx, a.family).unwrap_or(0) as u8
    } else {
        family_from_v6(ctx, a.saddr_v6)
    };
    ev.family = family;
    ev.sport = read_uint(ctx, a.sport).unwrap_or(0) as u16;
    ev.dport = read_uint(ctx, a.dport).unwrap_or(0) as u16;
    // SAFETY: every read_at is a checked kernel read (bpf_probe_read_kernel)
    // into a byte array, for which any bit pattern is valid; a field outside
    // the record is an error, never a fault.
    unsafe {
        if family == 2 {
            if a.saddr.size >= 4 {
                if let Ok(v) = ctx.read_at::<[u8; 4]>(a.saddr.offset as usize) {
                    ev.saddr[..4].copy_from_slice(&v);
                }
            }
            if a.daddr.size >= 4 {
                if let Ok(v) = ctx.read_at::<[u8; 4]>(a.daddr.offset as usize) {
                    ev.daddr[..4].copy_from_slice(&v);
                }
            }
        } else if family == 10 {
            if a.saddr_v6.size >= 16 {
                if let Ok(v) = ctx.read_at::<[u8; 16]>(a.saddr_v6.offset as usize) {
                    ev.saddr = v;
                }
            }
            if a.daddr_v6.size >= 16 {
                if let Ok(v) = ctx.read_at::<[u8; 16]>(a.daddr_v6.offset as usize) {
                    ev.daddr = v;
                }
            }
        }
    }
}

/// Before 5.12 the tcp tracepoints carry no `family`: they store every
/// address as IPv6, an IPv4 one as v4-mapped (`::ffff:a.b.c.d`), beside
/// the 4-byte fields. The mapping says which family it was.
#[inline(always)]
fn family_from_v6(ctx: &TracePointContext, f: FieldLoc) -> u8 {
    if f.size < 16 {
        return 0;
    }
    // SAFETY: a checked kernel read (bpf_probe_read_kernel) into a byte
    // array, for which any bit pattern is valid; a bad offset is an error.
    let Ok(v) = (unsafe { ctx.read_at::<[u8; 16]>(f.offset as usize) }) else {
        return 0;
    };
    let head = u64::from_ne_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
    if head == 0 && v[8] == 0 && v[9] == 0 && v[10] == 0xff && v[11] == 0xff {
        2
    } else {
        10
    }
}

/// The 4-tuple of a socket through BTF-discovered `sock_common` offsets,
/// ours first; left empty where an offset is unknown.
#[inline(always)]
pub fn read_sock_addrs(sk: u64, ev: &mut RawEvent) {
    let k = &config().kernel;
    let family = read_kernel::<u16>(sk, k.sock_family).unwrap_or(0);
    // tcp_set_state(CLOSE) releases the port (skc_num = 0) before the
    // state change is traced; inet_sport keeps it.
    ev.sport = if k.inet_sport >= 0 {
        u16::from_be(read_kernel::<u16>(sk, k.inet_sport).unwrap_or(0))
    } else {
        read_kernel::<u16>(sk, k.sock_num).unwrap_or(0)
    };
    ev.dport = u16::from_be(read_kernel::<u16>(sk, k.sock_dport).unwrap_or(0));
    if family == 2 {
        ev.family = 2;
        if let Some(a) = read_kernel::<[u8; 4]>(sk, k.sock_rcv_saddr) {
            ev.saddr[..4].copy_from_slice(&a);
        }
        if let Some(a) = read_kernel::<[u8; 4]>(sk, k.sock_daddr) {
            ev.daddr[..4].copy_from_slice(&a);
        }
    } else if family == 10 {
        ev.family = 10;
        if let Some(a) = read_kernel::<[u8; 16]>(sk, k.sock_v6_rcv_saddr) {
            ev.saddr = a;
        }
        if let Some(a) = read_kernel::<[u8; 16]>(sk, k.sock_v6_daddr) {
            ev.daddr = a;
        }
    }
}

/// A `sockaddr_in`/`sockaddr_in6` blob (the UAPI layout: family, big-endian
/// port, then the address at 4 for IPv4 or 8 for IPv6).
#[inline(always)]
fn read_sockaddr(
    ctx: &TracePointContext,
    f: FieldLoc,
    family: &mut u8,
    port: &mut u16,
    addr: &mut [u8; 16],
) {
    if f.size < 16 {
        return;
    }
    let base = f.offset as usize;
    // SAFETY: every read_at is a checked kernel read (bpf_probe_read_kernel)
    // into an integer or byte array, for which any bit pattern is valid; a
    // field outside the record is an error, never a fault.
    unsafe {
        let fam = ctx.read_at::<u16>(base).unwrap_or(0);
        *port = u16::from_be(ctx.read_at::<u16>(base + 2).unwrap_or(0));
        if fam == 2 {
            *family = 2;
            if let Ok(v) = ctx.read_at::<[u8; 4]>(base + 4) {
                addr[..4].copy_from_slice(&v);
            }
        } else if fam == 10 && f.size >= 24 {
            *family = 10;
            if let Ok(v) = ctx.read_at::<[u8; 16]>(base + 8) {
                *addr = v;
            }
        }
    }
}
