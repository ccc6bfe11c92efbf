//! `GET /api/v1/namespaces/NS/pods/NAME/log`: a container's log, read from
//! the real file the lab routed the pod to
//! ([`ClusterStore::map_pod_log`](crate::control::store::ClusterStore::map_pod_log)),
//! as the kubelet serves the file the container runtime wrote.
//!
//! Served as the real API server does: `text/plain`, one line per log line;
//! `timestamps=true` puts the runtime's RFC 3339 stamp (nanoseconds, UTC)
//! and a space before each line; `sinceTime` / `sinceSeconds` drop lines
//! stamped earlier; `follow=true` keeps the response open and sends lines
//! as they are written, until the pod is gone or the server stops.
//!
//! The stamp: a file line that starts with a Unix time in seconds (nginx's
//! `$msec`, e.g. `1732519154.313 `) carries its own, which is stripped from
//! the content; so does a line in the CRI log format a container runtime
//! writes (`2026-12-02T05:48:04.123456789Z stdout F <content>`, the lab's
//! Envoy and HAProxy logs); any other line is stamped when the server reads
//! it, as a runtime stamps what it reads from the container's stdout.
//!
//! A runtime reads a line after it was written, so its stamp is never
//! earlier than the write. `$msec` is cut to the millisecond: taken as is,
//! a request sent in the first millisecond of a `sinceTime` window would be
//! stamped before it and dropped. The stamp is therefore the end of the
//! prefix's last digit (`.313` is `.313999999`), as a runtime's would be.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, watch};

use crate::control::store::{ClusterStore, Kind};

/// How often a followed log file is polled for new lines.
const POLL: Duration = Duration::from_millis(25);
/// Largest read from the file in one go.
const READ_CHUNK: u64 = 1 << 20;

/// The query of a log request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub follow: bool,
    pub timestamps: bool,
    /// Only lines stamped at or after this (Unix ns).
    pub since_ns: Option<i64>,
}

impl LogRequest {
    /// From the query parameters (`sinceTime` is RFC 3339; at most one of
    /// `sinceTime` and `sinceSeconds`).
    pub fn parse(
        follow: bool,
        timestamps: bool,
        since_time: Option<&str>,
        since_seconds: Option<&str>,
        now_ns: i64,
    ) -> Result<LogRequest, String> {
        let since_ns = match (since_time, since_seconds) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(t), None) => {
                let t: jiff::Timestamp = t
                    .parse()
                    .map_err(|e| format!("sinceTime {t:?} is not an RFC 3339 time: {e}"))?;
                Some(i64::try_from(t.as_nanosecond()).map_err(|_| "sinceTime out of range")?)
            }
            (None, Some(s)) => {
                let s: i64 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or("sinceSeconds must be a positive whole number")?;
                Some(now_ns.saturating_sub(s.saturating_mul(1_000_000_000)))
            }
            (None, None) => None,
        };
        Ok(LogRequest {
            follow,
            timestamps,
            since_ns,
        })
    }
}

/// A file line's stamp (its own `$msec` prefix, else `read_ns`) and its
/// content.
pub fn split_stamp(line: &str, read_ns: i64) -> (i64, &str) {
    if let Some(cri) = split_cri(line) {
        return cri;
    }
    if let Some((first, rest)) = line.split_once(' ') {
        if let Some(ns) = unix_seconds_ns(first) {
            return (ns, rest);
        }
    }
    (read_ns, line)
}

/// A CRI log line's stamp and content: `<RFC 3339> <stdout|stderr> <F|P> <content>`.
fn split_cri(line: &str) -> Option<(i64, &str)> {
    let mut parts = line.splitn(4, ' ');
    let stamp: jiff::Timestamp = parts.next()?.parse().ok()?;
    if !matches!(parts.next()?, "stdout" | "stderr") || !matches!(parts.next()?, "F" | "P") {
        return None;
    }
    let ns = i64::try_from(stamp.as_nanosecond()).ok()?;
    Some((ns, parts.next().unwrap_or("")))
}

/// `1732519154.313` (seconds since the epoch, up to 9 decimals) in ns, at
/// the end of its last digit (`.313999999`): never before the write.
fn unix_seconds_ns(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !(9..=11).contains(&int.len()) || frac.len() > 9 || !digits(int) || !digits(frac) {
        return None;
    }
    let mut ns = int.parse::<i64>().ok()?.checked_mul(1_000_000_000)?;
    let mut scale = 100_000_000;
    for b in frac.bytes() {
        ns += i64::from(b - b'0') * scale;
        scale /= 10;
    }
    let last_digit_unit = 10_i64.pow(9 - frac.len() as u32);
    Some(ns + last_digit_unit - 1)
}

/// One response line, newline included.
pub fn render(stamp_ns: i64, content: &str, timestamps: bool) -> String {
    if !timestamps {
        return format!("{content}\n");
    }
    let stamp = jiff::Timestamp::from_nanosecond(i128::from(stamp_ns))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    // RFC 3339 with nanoseconds, as kubelet's RFC3339Nano (trailing zeros trimmed).
    format!("{stamp} {content}\n")
}

fn now_ns() -> i64 {
    jiff::Timestamp::now()
        .as_nanosecond()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// Streams the log of `namespace/pod` from `path` (none: an empty log).
pub fn serve(
    store: ClusterStore,
    namespace: String,
    pod: String,
    path: Option<PathBuf>,
    request: LogRequest,
    shutdown: watch::Receiver<bool>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(pump(store, namespace, pod, path, request, tx, shutdown));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response()
}

/// Where a followed file has been read up to.
///
/// The file stays open between polls, as a runtime's log reader keeps its
/// descriptor: lines written just before the file is removed (the lab
/// cleans its run directory as soon as a scenario ends) are still read,
/// and a file replaced at the same path is read to its end first.
#[derive(Default)]
struct FileCursor {
    file: Option<std::fs::File>,
    inode: Option<u64>,
    offset: u64,
    partial: Vec<u8>,
}

impl FileCursor {
    /// Appends what was written since the last call to `partial` (one
    /// `READ_CHUNK` at most, so that a large file is sent as it is read);
    /// moves to a new file at `path` once the open one is read to its end,
    /// and starts over when the file was truncated.
    /// Whether anything was read.
    fn read_new(&mut self, path: &std::path::Path) -> bool {
        let at_path = std::fs::metadata(path).ok();
        if let Some(meta) = &at_path {
            if self.inode == Some(meta.ino()) && meta.len() < self.offset {
                self.offset = 0;
                self.partial.clear();
            }
        }
        if self.read_open() {
            return true;
        }
        if at_path.is_some_and(|m| self.inode != Some(m.ino())) {
            if let Ok(f) = std::fs::File::open(path) {
                self.inode = f.metadata().ok().map(|m| m.ino());
                self.file = Some(f);
                self.offset = 0;
                self.partial.clear();
                return self.read_open();
            }
        }
        false
    }

    /// One read of at most `READ_CHUNK` from the open file; whether it
    /// returned anything.
    fn read_open(&mut self) -> bool {
        let Some(f) = self.file.as_mut() else {
            return false;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let before = self.partial.len();
        if f.take(READ_CHUNK).read_to_end(&mut self.partial).is_err() {
            return false;
        }
        let got = (self.partial.len() - before) as u64;
        self.offset += got;
        got > 0
    }

    /// The next complete line, without its newline.
    fn next_line(&mut self) -> Option<String> {
        let pos = self.partial.iter().position(|b| *b == b'\n')?;
        let line: Vec<u8> = self.partial.drain(..=pos).collect();
        Some(String::from_utf8_lossy(&line[..pos]).into_owned())
    }
}

async fn pump(
    store: ClusterStore,
    namespace: String,
    pod: String,
    path: Option<PathBuf>,
    request: LogRequest,
    tx: mpsc::Sender<Bytes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cursor = FileCursor::default();
    loop {
        // A follow ends with the container: here, when the pod is gone or
        // the server stops. Noticed before the read, so that what was
        // written up to then is still sent, as a runtime sends a finished
        // container's log to its end.
        let ending = !request.follow
            || store.get(Kind::Pod, &namespace, &pod).is_none()
            || *shutdown.borrow();
        let more = path.as_ref().is_some_and(|p| cursor.read_new(p));
        let read_ns = now_ns();
        while let Some(line) = cursor.next_line() {
            let (stamp, content) = split_stamp(&line, read_ns);
            if request.since_ns.is_some_and(|s| stamp < s) {
                continue;
            }
            let out = render(stamp, content, request.timestamps);
            if tx.send(Bytes::from(out)).await.is_err() {
                return; // the client went away
            }
        }
        if more {
            continue; // a backlog: read on at once
        }
        if ending {
            // The last line may lack its newline: a plain read shows it.
            if !request.follow && !cursor.partial.is_empty() {
                let line = String::from_utf8_lossy(&cursor.partial).into_owned();
                let (stamp, content) = split_stamp(&line, read_ns);
                if request.since_ns.is_none_or(|s| stamp >= s) {
                    let _ = tx
                        .send(Bytes::from(render(stamp, content, request.timestamps)))
                        .await;
                }
            }
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return; // the server is gone
                }
            }
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msec_prefix_is_the_stamp() {
        assert_eq!(
            split_stamp("1732519154.313 10.1.0.7 - - [..]", 7),
            (1_732_519_154_313_999_999, "10.1.0.7 - - [..]")
        );
        assert_eq!(
            split_stamp("1732519154 x", 7),
            (1_732_519_154_999_999_999, "x")
        );
        assert_eq!(
            split_stamp("1732519154.123456789 x", 7),
            (1_732_519_154_123_456_789, "x")
        );
        assert_eq!(
            split_stamp("10.1.0.7 - - [..]", 7),
            (7, "10.1.0.7 - - [..]")
        );
        assert_eq!(split_stamp("200 OK", 7), (7, "200 OK"));
        assert_eq!(
            render(1_732_519_154_313_000_000, "x", true),
            "2024-11-25T07:19:14.313Z x\n"
        );
        assert_eq!(render(1, "x", false), "x\n");
        // The CRI format a runtime writes: its stamp, the content after
        // the stream and the tag; `--timestamps` shows the same stamp.
        let (ns, content) = split_stamp(
            "2025-12-02T05:48:04.123456789Z stdout F [2025-12-02T05:48:04.120Z] \"GET / HTTP/1.1\" 503 UF",
            7,
        );
        assert_eq!(ns, 1_764_654_484_123_456_789);
        assert_eq!(
            content,
            "[2025-12-02T05:48:04.120Z] \"GET / HTTP/1.1\" 503 UF"
        );
        assert_eq!(
            render(ns, content, true),
            "2025-12-02T05:48:04.123456789Z [2025-12-02T05:48:04.120Z] \"GET / HTTP/1.1\" 503 UF\n"
        );
        assert_eq!(split_stamp("2025-12-02T05:48:04Z stdin F x", 7).0, 7);
    }

    /// Lines written just before the file is removed are still read, and a
    /// file replaced at the same path is read to its end before the new one.
    #[test]
    fn a_removed_or_replaced_file_is_read_to_its_end() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("fxlab-podlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.log");
        let mut old = std::fs::File::create(&path).unwrap();
        writeln!(old, "one").unwrap();
        let mut c = FileCursor::default();
        assert!(c.read_new(&path));
        assert_eq!(c.next_line().as_deref(), Some("one"));
        assert!(!c.read_new(&path), "nothing new");
        writeln!(old, "two").unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(c.read_new(&path));
        assert_eq!(c.next_line().as_deref(), Some("two"));
        writeln!(old, "three").unwrap();
        std::fs::write(&path, "new\n").unwrap();
        assert!(c.read_new(&path));
        assert_eq!(c.next_line().as_deref(), Some("three"));
        assert!(c.read_new(&path));
        assert_eq!(c.next_line().as_deref(), Some("new"));
        assert_eq!(c.next_line(), None);
        // Truncated (found, as by tail, by the size falling below the offset).
        std::fs::write(&path, "c\n").unwrap();
        assert!(c.read_new(&path), "a truncated file starts over");
        assert_eq!(c.next_line().as_deref(), Some("c"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn since_time_and_seconds() {
        let r = LogRequest::parse(true, true, Some("2024-11-25T07:19:14Z"), None, 0).unwrap();
        assert_eq!(r.since_ns, Some(1_732_519_154_000_000_000));
        let r = LogRequest::parse(false, false, None, Some("10"), 20_000_000_000).unwrap();
        assert_eq!(r.since_ns, Some(10_000_000_000));
        assert!(LogRequest::parse(false, false, Some("x"), None, 0).is_err());
        assert!(
            LogRequest::parse(false, false, Some("2024-11-25T07:19:14Z"), Some("1"), 0).is_err()
        );
        assert!(LogRequest::parse(false, false, None, Some("-1"), 0).is_err());
    }
}
