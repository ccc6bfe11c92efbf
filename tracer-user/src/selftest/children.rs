//! The processes the self-tests signal. The agent (or test binary) re-executes
//! itself in one of these modes, so the tests need no shell and no tools:
//! they run the same inside a bare initramfs as on a node.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The hidden argument that selects a child mode.
pub const CHILD_ARG: &str = "__fivexx-selftest-child";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildMode {
    /// Handles SIGTERM by exiting with code 3.
    TermHandler,
    /// Ignores SIGTERM and SIGHUP (SIG_IGN), as a PID 1 without handlers does.
    IgnoreTerm,
    /// Exits at once with the given code.
    Exit(i32),
    /// Sleeps with default dispositions until killed.
    Sleep,
}

impl ChildMode {
    pub fn comm(self) -> &'static str {
        match self {
            ChildMode::TermHandler => "fx-term",
            ChildMode::IgnoreTerm => "fx-ignore",
            ChildMode::Exit(_) => "fx-exit",
            ChildMode::Sleep => "fx-sleep",
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            ChildMode::TermHandler => vec!["term-handler".into()],
            ChildMode::IgnoreTerm => vec!["ignore-term".into()],
            ChildMode::Exit(c) => vec!["exit".into(), c.to_string()],
            ChildMode::Sleep => vec!["sleep".into()],
        }
    }
}

/// Starts `exe` in `mode` and waits until it is ready to be signalled.
pub fn spawn(exe: &Path, mode: ChildMode) -> std::io::Result<Child> {
    let mut child = Command::new(exe)
        .arg(CHILD_ARG)
        .args(mode.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    if !matches!(mode, ChildMode::Exit(_)) {
        use std::io::Read;
        let mut out = child.stdout.take().expect("piped stdout");
        let mut b = [0u8; 6];
        out.read_exact(&mut b)?;
    }
    Ok(child)
}

extern "C" fn exit_3(_sig: libc::c_int) {
    // SAFETY: async-signal-safe.
    unsafe { libc::_exit(3) };
}

/// Entry point of a child: never returns.
pub fn run(args: &[String]) -> ! {
    let mode = match args.first().map(String::as_str) {
        Some("term-handler") => ChildMode::TermHandler,
        Some("ignore-term") => ChildMode::IgnoreTerm,
        Some("exit") => ChildMode::Exit(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1)),
        Some("sleep") => ChildMode::Sleep,
        _ => {
            eprintln!("unknown self-test child mode {args:?}");
            std::process::exit(64)
        }
    };
    let name = std::ffi::CString::new(mode.comm()).expect("no NUL");
    // SAFETY: plain syscalls; the handler is async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
        match mode {
            ChildMode::TermHandler => {
                libc::signal(libc::SIGTERM, exit_3 as *const () as libc::sighandler_t);
            }
            ChildMode::IgnoreTerm => {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
            }
            ChildMode::Exit(code) => libc::_exit(code),
            ChildMode::Sleep => {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
            }
        }
    }
    let mut out = std::io::stdout();
    let _ = out.write_all(b"ready\n");
    let _ = out.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
