//! The container runtime's side of a proxy's log: the proxy writes its
//! access log to its stdout (Envoy `/dev/stdout`, HAProxy `log stdout`), and
//! this reads the pipe as containerd does and writes each line to the
//! container log file in the CRI format, `<RFC 3339 ns stamp> stdout F
//! <line>`, the stamp taken when the line was read. The fake API server
//! serves that file as the pod's `pods/log` (the stamp becomes the
//! `--timestamps` prefix).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// The container log's file name, in the ingress directory.
pub const FILE: &str = "container.log";

/// One CRI log line for `content` read at `stamp_ns` (Unix ns) from
/// `stream` (`stdout` or `stderr`).
pub fn cri_line(stamp_ns: i64, stream: &str, content: &str) -> String {
    let stamp = jiff::Timestamp::from_nanosecond(i128::from(stamp_ns))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    // containerd writes RFC3339Nano: nanoseconds, trailing zeros trimmed.
    format!("{stamp} {stream} F {content}\n")
}

/// Follows `pipe` until it closes (the process exited), appending every
/// line to `path`. The thread ends with the pipe.
pub fn follow<R: std::io::Read + Send + 'static>(
    pipe: R,
    stream: &'static str,
    path: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    let mut file = open_append(&path)?;
    std::thread::Builder::new()
        .name("containerd-log".into())
        .spawn(move || {
            let mut lines = BufReader::new(pipe);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let now = crate::clock::wall_ns();
                        let content = line.trim_end_matches(['\n', '\r']);
                        if file
                            .write_all(cri_line(now, stream, content).as_bytes())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        })
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stamped_in_cri_format() {
        let l = cri_line(1_764_654_484_123_456_789, "stdout", "hello");
        assert_eq!(l, "2025-12-02T05:48:04.123456789Z stdout F hello\n");
        let dir = std::env::temp_dir().join(format!("fx-rtlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE);
        let _ = std::fs::remove_file(&path);
        let t = follow(&b"a b\nc\n"[..], "stdout", path.clone()).unwrap();
        t.join().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("Z stdout F a b"), "{}", lines[0]);
        assert!(lines[1].ends_with("Z stdout F c"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
