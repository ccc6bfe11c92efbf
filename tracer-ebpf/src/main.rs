//! fivexx kernel programs: one tracepoint program per hook, each in its own
//! module. Every field is read at an offset the agent discovered from tracefs
//! or BTF at start-up (see `TracerConfig`); nothing here knows a layout.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod emit;
#[cfg(target_arch = "bpf")]
mod probes;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // Host builds only type-check the ABI; the real object is built for
    // bpfel-unknown-none by tracer-user's build script.
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// SAFETY: the loader reads the `license` section as a NUL-terminated
// string; this is one, and no other symbol is named LICENSE.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
