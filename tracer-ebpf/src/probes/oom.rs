//! `oom:mark_victim`: the OOM killer picked a process. Runs in the context
//! of the allocating task, which is not the victim.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::tracepoint, programs::TracePointContext,
    EbpfContext,
};
use tracer_ebpf::EventKind;

use crate::emit::{config, emit, read_i32, read_uint};

#[tracepoint]
pub fn mark_victim(ctx: TracePointContext) -> u32 {
    let l = &config().oom;
    emit(EventKind::OomVictim, |ev| {
        ev.target_pid = read_i32(&ctx, l.pid).unwrap_or(0);
        // __data_loc: low 16 bits offset of the string inside the record.
        if let Some(loc) = read_uint(&ctx, l.comm_loc) {
            let off = (loc & 0xffff) as usize;
            let src = (ctx.as_ptr() as usize + off) as *const u8;
            // SAFETY: the helper copies at most `target_comm.len()` bytes into
            // it through the kernel's fault-checked path, so a wrong offset
            // is an error and the destination is never overrun.
            let _ = unsafe { bpf_probe_read_kernel_str_bytes(src, &mut ev.target_comm) };
        }
    });
    0
}
