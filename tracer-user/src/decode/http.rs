//! `syscalls:sys_enter_{write,writev,sendto,sendmsg}` of a peeked proxy
//! (probes/http.rs).

use fivexx_core::KernelEvent;
use tracer_ebpf::RawEvent;

use super::{tuple, Decoder};

impl Decoder {
    /// A 5xx status line: `code` is the status, `result` the fd, the kind
    /// detail the bytes peeked, and the socket behind the fd where BTF
    /// allowed.
    pub(super) fn http_response(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        // Written by the proxy worker itself: the task is the sender.
        ev.http_status = u16::try_from(raw.code).ok();
        ev.fd = Some(raw.result);
        ev.http_peek_bytes = raw.peeked_len().and_then(|n| u8::try_from(n).ok());
        ev.tuple = tuple(raw);
        ev.cgroup_id = Some(raw.cgroup_id);
        ev.sock_id = self.sock_id(raw.sock);
    }
}

#[cfg(test)]
mod tests {
    use tracer_ebpf::{EventKind, RawEvent};

    use crate::decode::tests::decoder;

    #[test]
    fn status_fd_and_peeked_bytes_come_from_code_result_and_kind_detail() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::HttpResponse as u8;
        raw.code = 502;
        raw.result = 12;
        raw.set_peeked_len(16);
        raw.family = 2;
        raw.saddr[..4].copy_from_slice(&[10, 244, 0, 5]);
        raw.daddr[..4].copy_from_slice(&[10, 244, 0, 9]);
        raw.sport = 80;
        raw.dport = 51000;
        raw.task_tgid = 31;
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(ev.http_status, Some(502));
        assert_eq!(ev.fd, Some(12));
        assert_eq!(ev.http_peek_bytes, Some(16));
        assert_eq!(ev.tuple.map(|t| t.sport), Some(80));
        assert_eq!(ev.task.map(|t| t.pid), Some(31), "the proxy wrote it");
        assert_eq!(ev.sock_id, None, "no socket behind the fd was found");
    }
}
