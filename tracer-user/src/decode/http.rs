//! `syscalls:sys_enter_{write,writev,sendto,sendmsg}` of a peeked proxy
//! (probes/http.rs).

use fivexx_core::KernelEvent;
use tracer_ebpf::RawEvent;

use super::{tuple, Decoder};

impl Decoder {
    /// A 5xx status line: `code` is the status, `result` the fd, `reserved`
    /// the bytes peeked, and the socket behind the fd where BTF allowed.
    pub(super) fn http_response(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        // Written by the proxy worker itself: the task is the sender.
        ev.http_status = u16::try_from(raw.code).ok();
        ev.fd = Some(raw.result);
        ev.http_peek_bytes = u8::try_from(raw.reserved).ok();
        ev.tuple = tuple(raw);
        ev.cgroup_id = Some(raw.cgroup_id);
        ev.sock_id = self.sock_id(raw.sock);
    }
}
