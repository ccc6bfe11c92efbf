//! HTTP status-line peek on `sys_enter_{write,writev,sendto,sendmsg}`.
//!
//! Only for processes whose cgroup is in HTTP_CGROUPS (the proxy pods the
//! user chose; empty by default), and only the first HTTP_PEEK_BYTES of the
//! first buffer: enough for `HTTP/1.1 502 Bad`, never headers or bodies.
//! 5xx responses are records; other classes are only counted.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_task, bpf_probe_read_user,
        bpf_probe_read_user_buf,
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
};
use tracer_ebpf::{EventKind, KernelOffsets, RawEvent, WriteLayout, HTTP_PEEK_BYTES};

use crate::emit::{bump, config, emit, read_kernel, read_sock_addrs, read_uint};

#[map(name = "HTTP_CGROUPS")]
static HTTP_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(1024, 0);

#[map(name = "HTTP_COUNTS")]
static HTTP_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(8, 0);

/// UAPI layouts, used only when BTF does not describe them.
const UAPI_MSGHDR_IOV: i32 = 16;
const UAPI_IOVEC_LEN: i32 = 8;

#[inline(always)]
fn in_http_cgroup() -> bool {
    // SAFETY: a helper that takes no arguments and touches no memory of ours.
    let cg = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: `get` returns a reference into the map that userspace may
    // change concurrently; it is only tested for presence, never read.
    unsafe { HTTP_CGROUPS.get(&cg).is_some() }
}

#[tracepoint]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    let l = &config().http.write;
    if in_http_cgroup() {
        let buf = read_uint(&ctx, l.ptr).unwrap_or(0);
        let len = read_uint(&ctx, l.len).unwrap_or(0);
        peek(&ctx, l, buf, len);
    }
    0
}

#[tracepoint]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    let l = &config().http.sendto;
    if in_http_cgroup() {
        let buf = read_uint(&ctx, l.ptr).unwrap_or(0);
        let len = read_uint(&ctx, l.len).unwrap_or(0);
        peek(&ctx, l, buf, len);
    }
    0
}

/// nginx sends its error pages with writev: iov[0] starts with the status line.
#[tracepoint]
pub fn sys_enter_writev(ctx: TracePointContext) -> u32 {
    let l = &config().http.writev;
    if in_http_cgroup() && read_uint(&ctx, l.len).unwrap_or(0) > 0 {
        let vec = read_uint(&ctx, l.ptr).unwrap_or(0);
        peek_iovec(&ctx, l, vec);
    }
    0
}

#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    let l = &config().http.sendmsg;
    if in_http_cgroup() {
        let msg = read_uint(&ctx, l.ptr).unwrap_or(0);
        let k = &config().kernel;
        let off = if k.msghdr_iov >= 0 {
            k.msghdr_iov
        } else {
            UAPI_MSGHDR_IOV
        };
        // SAFETY: bpf_probe_read_user copies through the fault-checked user
        // access path: a bad user pointer is an error; any u64 is valid.
        let vec = unsafe { bpf_probe_read_user((msg + off as u64) as *const u64) }.unwrap_or(0);
        peek_iovec(&ctx, l, vec);
    }
    0
}

#[inline(always)]
fn peek_iovec(ctx: &TracePointContext, l: &WriteLayout, vec: u64) {
    if vec == 0 {
        return;
    }
    let k = &config().kernel;
    let base_off = if k.iovec_base >= 0 { k.iovec_base } else { 0 };
    let len_off = if k.iovec_len >= 0 {
        k.iovec_len
    } else {
        UAPI_IOVEC_LEN
    };
    // SAFETY: bpf_probe_read_user copies through the fault-checked user
    // access path: a bad user pointer is an error; any u64 is valid.
    let base = unsafe { bpf_probe_read_user((vec + base_off as u64) as *const u64) }.unwrap_or(0);
    // SAFETY: as above.
    let len = unsafe { bpf_probe_read_user((vec + len_off as u64) as *const u64) }.unwrap_or(0);
    peek(ctx, l, base, len);
}

/// Reads at most min(len, 16) bytes and parses `HTTP/1.x NNN`.
#[inline(always)]
fn peek(ctx: &TracePointContext, l: &WriteLayout, buf: u64, len: u64) {
    // "HTTP/1.1 NNN" is 12 bytes; shorter writes cannot be a status line.
    if buf == 0 || len < 12 {
        return;
    }
    let mut b = [0u8; HTTP_PEEK_BYTES];
    let n = if len < HTTP_PEEK_BYTES as u64 {
        12
    } else {
        HTTP_PEEK_BYTES
    };
    // SAFETY: the helper copies exactly `n` (<= b.len()) bytes into `b`
    // through the fault-checked user access path: a bad pointer is an error
    // and the buffer is never overrun.
    if unsafe { bpf_probe_read_user_buf(buf as *const u8, &mut b[..n]) }.is_err() {
        return;
    }
    if &b[..7] != b"HTTP/1." || (b[7] != b'0' && b[7] != b'1') || b[8] != b' ' {
        return;
    }
    let d = |c: u8| c.wrapping_sub(b'0');
    let (h, t, u) = (d(b[9]), d(b[10]), d(b[11]));
    if h == 0 || h > 5 || t > 9 || u > 9 {
        return;
    }
    bump(&HTTP_COUNTS, h as u32);
    if h != 5 {
        return;
    }
    let status = h as i32 * 100 + t as i32 * 10 + u as i32;
    let fd = read_uint(ctx, l.fd).unwrap_or(u64::MAX) as i32;
    // Resolve the socket before reserving: keeps the emit closure small
    // enough to be inlined (a BPF sub-program must not return a stack pointer).
    let mut sock = RawEvent::zeroed();
    socket_of_fd(fd, &mut sock);
    emit(EventKind::HttpResponse, |ev| {
        ev.code = status;
        ev.result = fd;
        ev.set_peeked_len(n as u32);
        ev.sock = sock.sock;
        ev.family = sock.family;
        ev.sport = sock.sport;
        ev.dport = sock.dport;
        ev.saddr = sock.saddr;
        ev.daddr = sock.daddr;
    });
}

/// The 4-tuple of the socket behind `fd` in the current task, through
/// BTF-discovered offsets; left empty where any step is unknown.
#[inline(always)]
fn socket_of_fd(fd: i32, ev: &mut RawEvent) {
    let k: &KernelOffsets = &config().kernel;
    if fd < 0 || fd > 1 << 20 {
        return;
    }
    // SAFETY: a helper with no arguments; the task pointer it returns is
    // never dereferenced, only passed to read_kernel's checked probe reads.
    let task = unsafe { bpf_get_current_task() };
    let Some(files) = read_kernel::<u64>(task, k.task_files) else {
        return;
    };
    let Some(fdt) = read_kernel::<u64>(files, k.files_fdt) else {
        return;
    };
    let Some(fd_array) = read_kernel::<u64>(fdt, k.fdt_fd) else {
        return;
    };
    let Some(file) = read_kernel::<u64>(fd_array, fd * 8) else {
        return;
    };
    let Some(socket) = read_kernel::<u64>(file, k.file_private_data) else {
        return;
    };
    let Some(sk) = read_kernel::<u64>(socket, k.socket_sk) else {
        return;
    };
    ev.sock = sk;
    read_sock_addrs(sk, ev);
}
