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
    /// Connects to 127.0.0.1:port, waits for a line on stdin, then writes
    /// HTTP status lines through write, writev, sendto and sendmsg.
    HttpWriter(u16),
}

impl ChildMode {
    pub fn comm(self) -> &'static str {
        match self {
            ChildMode::TermHandler => "fx-term",
            ChildMode::IgnoreTerm => "fx-ignore",
            ChildMode::Exit(_) => "fx-exit",
            ChildMode::Sleep => "fx-sleep",
            ChildMode::HttpWriter(_) => "fx-http",
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            ChildMode::TermHandler => vec!["term-handler".into()],
            ChildMode::IgnoreTerm => vec!["ignore-term".into()],
            ChildMode::Exit(c) => vec!["exit".into(), c.to_string()],
            ChildMode::Sleep => vec!["sleep".into()],
            ChildMode::HttpWriter(p) => vec!["http-writer".into(), p.to_string()],
        }
    }
}

/// Starts `exe` in `mode` and waits until it is ready to be signalled.
pub fn spawn(exe: &Path, mode: ChildMode) -> std::io::Result<Child> {
    let mut child = Command::new(exe)
        .arg(CHILD_ARG)
        .args(mode.args())
        .stdin(Stdio::piped())
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
    // SAFETY: _exit(2) is async-signal-safe and touches no Rust state, so
    // it may run in a signal handler.
    unsafe { libc::_exit(3) };
}

/// Entry point of a child: never returns.
pub fn run(args: &[String]) -> ! {
    let mode = match args.first().map(String::as_str) {
        Some("term-handler") => ChildMode::TermHandler,
        Some("ignore-term") => ChildMode::IgnoreTerm,
        Some("exit") => ChildMode::Exit(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1)),
        Some("sleep") => ChildMode::Sleep,
        Some("http-writer") => {
            ChildMode::HttpWriter(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0))
        }
        _ => {
            eprintln!("unknown self-test child mode {args:?}");
            std::process::exit(64)
        }
    };
    let name = std::ffi::CString::new(mode.comm()).expect("no NUL");
    // SAFETY: the child is single-threaded here; `name` is a NUL-terminated
    // CString alive across prctl; the installed handler (exit_3) only calls
    // the async-signal-safe _exit.
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
            ChildMode::HttpWriter(_) => {}
        }
    }
    if let ChildMode::HttpWriter(port) = mode {
        http_writer(port);
    }
    let mut out = std::io::stdout();
    let _ = out.write_all(b"ready\n");
    let _ = out.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// The statuses written, in order, by `HttpWriter`: one per syscall kind,
/// then a 12-byte write (the shortest status line) and a non-HTTP write.
pub const HTTP_WRITES: [(&str, &[u8]); 6] = [
    ("write", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("writev", b"HTTP/1.1 404 Not Found\r\n"),
    (
        "sendto",
        b"HTTP/1.0 502 Bad Gateway\r\nX-Secret: hunter2\r\n\r\n",
    ),
    ("sendmsg", b"HTTP/1.1 504 Gateway Time-out\r\n\r\n"),
    ("write", b"HTTP/1.1 503"),
    ("write", b"not http at all: 500 nothing"),
];

fn http_writer(port: u16) -> ! {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    let stream = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("http-writer: connect: {e}");
            std::process::exit(65)
        }
    };
    let mut out = std::io::stdout();
    let _ = out.write_all(b"ready\n");
    let _ = out.flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let fd = stream.as_raw_fd();
    for (call, bytes) in HTTP_WRITES {
        let ptr = bytes.as_ptr() as *mut libc::c_void;
        // SAFETY: the buffers are 'static; the iovecs and msghdr are locals
        // that point into them with their true lengths and outlive the calls;
        // an all-zero msghdr is valid (null pointers, zero lengths).
        unsafe {
            match call {
                "writev" => {
                    let tail = b"Content-Length: 0\r\n\r\n";
                    let iov = [
                        libc::iovec {
                            iov_base: ptr,
                            iov_len: bytes.len(),
                        },
                        libc::iovec {
                            iov_base: tail.as_ptr() as *mut libc::c_void,
                            iov_len: tail.len(),
                        },
                    ];
                    libc::writev(fd, iov.as_ptr(), 2);
                }
                "sendto" => {
                    libc::sendto(fd, ptr, bytes.len(), 0, std::ptr::null(), 0);
                }
                "sendmsg" => {
                    let mut iov = libc::iovec {
                        iov_base: ptr,
                        iov_len: bytes.len(),
                    };
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = &mut iov;
                    msg.msg_iovlen = 1;
                    libc::sendmsg(fd, &msg, 0);
                }
                _ => {
                    libc::write(fd, ptr, bytes.len());
                }
            }
        }
    }
    let _ = out.write_all(b"done\n");
    let _ = out.flush();
    std::process::exit(0)
}
