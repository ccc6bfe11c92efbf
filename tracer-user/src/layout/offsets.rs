//! Kernel struct member offsets from BTF, for the facts no tracepoint
//! carries (exit codes, group death, a reset socket's state, fd -> socket).

use tracer_ebpf::KernelOffsets;

use crate::btf::KernelBtf;

pub(super) fn non_negative(v: i32) -> Option<u32> {
    u32::try_from(v).ok()
}

pub(super) fn kernel_offsets(btf: Option<&KernelBtf>) -> KernelOffsets {
    let mut k = KernelOffsets::UNKNOWN;
    let Some(btf) = btf else {
        return k;
    };
    let off = |t: &str, m: &str| {
        btf.member_offset(t, m)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(-1)
    };
    k.task_exit_code = off("task_struct", "exit_code");
    k.task_signal = off("task_struct", "signal");
    k.signal_live = off("signal_struct", "live");
    // struct sock starts with its sock_common (__sk_common).
    let common = off("sock", "__sk_common");
    let in_sock = |m: &str| {
        let o = off("sock_common", m);
        if common >= 0 && o >= 0 {
            common + o
        } else {
            -1
        }
    };
    k.sock_state = in_sock("skc_state");
    k.sock_family = in_sock("skc_family");
    k.sock_daddr = in_sock("skc_daddr");
    k.sock_rcv_saddr = in_sock("skc_rcv_saddr");
    k.sock_dport = in_sock("skc_dport");
    k.sock_num = in_sock("skc_num");
    k.sock_v6_daddr = in_sock("skc_v6_daddr");
    k.sock_v6_rcv_saddr = in_sock("skc_v6_rcv_saddr");
    k.task_files = off("task_struct", "files");
    k.files_fdt = off("files_struct", "fdt");
    k.fdt_fd = off("fdtable", "fd");
    k.file_private_data = off("file", "private_data");
    k.socket_sk = off("socket", "sk");
    k.msghdr_iov = off("user_msghdr", "msg_iov");
    k.iovec_base = off("iovec", "iov_base");
    k.iovec_len = off("iovec", "iov_len");
    k
}
