//! `--proxy-logs`: follows the proxy pods' access logs through the API
//! (`pods/log`, follow, timestamps) and turns each line into a
//! [`Fact::ProxyLog`] for the session's fact stream.
//!
//! Why: the kernel peek reads the status line of plain HTTP/1.x answers
//! only. TLS and HTTP/2 client connections cannot be peeked, but the proxy
//! logs every answer with its status and the upstream(s) it tried. Only
//! nginx-based proxies are followed (ingress-nginx's `upstreaminfo` and
//! nginx's `combined` are the formats parsed); a line in another format is
//! counted and reported once at the end, never fatal. A denied `pods/log`
//! is one warning line, and the session goes on without logs.

use std::time::Duration;

use fivexx_core::model::{Fact, ProxyLogFact};
use fivexx_core::proxylog::{parse_line, ProxyLogError};
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use tokio::sync::mpsc;

use crate::error::{classify, Op};
use crate::kube::KubeClient;

/// Lines buffered between the followers and the session.
const QUEUE: usize = 4096;

/// A proxy pod whose log is followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPod {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// Needed when the pod has several containers.
    pub container: Option<String>,
}

impl ProxyPod {
    /// The pod as a followed proxy, if its proxy label names an
    /// nginx-based one (ingress-nginx, nginx-ingress): other proxies log in
    /// formats this parser does not read.
    pub fn nginx(pod: &Pod) -> Option<ProxyPod> {
        let m = &pod.metadata;
        let labels = m.labels.as_ref()?;
        let is_nginx = ["app.kubernetes.io/name", "app"]
            .iter()
            .filter_map(|k| labels.get(*k))
            .any(|v| v.contains("nginx"));
        if !is_nginx {
            return None;
        }
        let spec = pod.spec.as_ref();
        let containers: Vec<&str> = spec
            .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let container = (containers.len() > 1).then(|| {
            containers
                .iter()
                .find(|c| **c == "controller")
                .or_else(|| containers.iter().find(|c| c.contains("nginx")))
                .unwrap_or(&containers[0])
                .to_string()
        });
        Some(ProxyPod {
            namespace: m.namespace.clone()?,
            name: m.name.clone()?,
            node: spec.and_then(|s| s.node_name.clone()),
            container,
        })
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What the followers send to the session.
#[derive(Debug)]
pub enum LogInput {
    Fact(Box<ProxyLogFact>),
    /// A line that is none of the parsed formats.
    Unparsed {
        error: ProxyLogError,
    },
    /// `pods/log` is forbidden: one line, already worded.
    Forbidden(String),
    /// A follower gave up (pod gone).
    Ended {
        pod: String,
        reason: String,
    },
}

/// The session's log followers: one per proxy pod, all sending to one
/// queue. Pods can be added while the session runs (a proxy rollout).
pub struct LogFollowers {
    client: KubeClient,
    since_ns: i64,
    tx: mpsc::Sender<LogInput>,
}

impl LogFollowers {
    /// Starts one follower per pod; lines logged before `since_ns` are
    /// skipped. The followers end when the receiver is dropped.
    pub fn start(
        client: &KubeClient,
        pods: Vec<ProxyPod>,
        since_ns: i64,
    ) -> (LogFollowers, mpsc::Receiver<LogInput>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let followers = LogFollowers {
            client: client.clone(),
            since_ns,
            tx,
        };
        for pod in pods {
            followers.add(pod);
        }
        (followers, rx)
    }

    /// Follows one more pod's log.
    pub fn add(&self, pod: ProxyPod) {
        tokio::spawn(follow_one(
            self.client.clone(),
            pod,
            self.since_ns,
            self.tx.clone(),
        ));
    }
}

/// Follows one pod's log, reconnecting when the stream ends (the API
/// server or kubelet closed it) until the pod is gone or access is denied.
async fn follow_one(client: KubeClient, pod: ProxyPod, since_ns: i64, tx: mpsc::Sender<LogInput>) {
    let api: Api<Pod> = Api::namespaced(client.kube.clone(), &pod.namespace);
    let mut seen = Seen::since(since_ns);
    let mut backoff = Duration::from_millis(500);
    loop {
        // sinceTime has whole seconds: ask from the second before, and
        // drop the earlier lines here by their stamps.
        let since = jiff::Timestamp::from_second(seen.floor_ns.div_euclid(1_000_000_000)).ok();
        let params = LogParams {
            container: pod.container.clone(),
            follow: true,
            timestamps: true,
            since_time: since,
            ..LogParams::default()
        };
        let reason = match api.log_stream(&pod.name, &params).await {
            Ok(stream) => {
                backoff = Duration::from_millis(500);
                match read_lines(stream, &pod, &mut seen, &tx).await {
                    Ok(()) => "the log stream ended".to_string(),
                    Err(Stop) => return,
                }
            }
            Err(e) => {
                let op = Op {
                    verb: "get",
                    resource: "pods/log",
                    namespace: Some(&pod.namespace),
                };
                match &e {
                    kube::Error::Api(s) if s.code == 403 || s.code == 401 => {
                        let err = classify(&e, &op, &client.server);
                        let line = format!(
                            "{}; continuing without proxy logs (grant `get` on `pods/log`)",
                            err.cause
                        );
                        let _ = tx.send(LogInput::Forbidden(line)).await;
                        return;
                    }
                    kube::Error::Api(s) if s.code == 404 => {
                        let _ = tx
                            .send(LogInput::Ended {
                                pod: pod.key(),
                                reason: "the pod is gone".into(),
                            })
                            .await;
                        return;
                    }
                    _ => classify(&e, &op, &client.server).cause,
                }
            }
        };
        if tx.is_closed() {
            return;
        }
        tracing::debug!(pod = %pod.key(), %reason, "proxy log: reconnecting");
        seen.reconnect();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Which lines of one pod's log were passed on, by the runtime's stamp, so
/// that a reconnect (which asks from a whole second) passes none twice.
/// Stamps are not unique (a runtime may stamp two lines alike; the lab's
/// have milliseconds), hence the count of lines at the last stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// Lines stamped before this are dropped.
    floor_ns: i64,
    last_ns: i64,
    /// Lines passed on with the stamp `last_ns`.
    at_last: usize,
    /// After a reconnect: lines stamped `last_ns` still to drop.
    skip_at_last: usize,
}

impl Seen {
    fn since(since_ns: i64) -> Seen {
        Seen {
            floor_ns: since_ns,
            last_ns: i64::MIN,
            at_last: 0,
            skip_at_last: 0,
        }
    }

    /// Whether a line with this stamp is new; counts it if so.
    fn fresh(&mut self, ns: i64) -> bool {
        if ns < self.floor_ns {
            return false;
        }
        if ns == self.last_ns {
            if self.skip_at_last > 0 {
                self.skip_at_last -= 1;
                return false;
            }
            self.at_last += 1;
        } else {
            self.last_ns = ns;
            self.at_last = 1;
            self.skip_at_last = 0;
        }
        true
    }

    /// The stream starts over from `last_ns`.
    fn reconnect(&mut self) {
        if self.last_ns != i64::MIN {
            self.floor_ns = self.last_ns;
            self.skip_at_last = self.at_last;
        }
    }
}

/// The session is gone: stop following.
struct Stop;

async fn read_lines(
    stream: impl futures::AsyncBufRead + Unpin,
    pod: &ProxyPod,
    seen: &mut Seen,
    tx: &mpsc::Sender<LogInput>,
) -> Result<(), Stop> {
    let mut stream = stream;
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        match stream.read_until(b'\n', &mut buf).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(pod = %pod.key(), error = %e, "proxy log stream failed");
                return Ok(());
            }
        }
        let line = String::from_utf8_lossy(&buf);
        let Some(input) = to_input(&line, pod, seen) else {
            continue;
        };
        if tx.send(input).await.is_err() {
            return Err(Stop);
        }
    }
}

/// One log line to what the session gets; `None` for lines already seen
/// or from before the session (by the runtime's stamp) and blank lines.
fn to_input(line: &str, pod: &ProxyPod, seen: &mut Seen) -> Option<LogInput> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return None;
    }
    let stamp = line
        .split_once(' ')
        .and_then(|(t, _)| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| i64::try_from(t.as_nanosecond()).ok());
    if stamp.is_some_and(|ns| !seen.fresh(ns)) {
        return None;
    }
    Some(match parse_line(line) {
        Ok(entry) => LogInput::Fact(Box::new(ProxyLogFact::new(
            &pod.namespace,
            &pod.name,
            pod.node.as_deref(),
            entry,
        ))),
        Err(error) => LogInput::Unparsed { error },
    })
}

/// What the session keeps about the logs: counts, and the warnings it
/// owes the user (each said once).
#[derive(Debug, Default)]
pub struct LogTally {
    pub pods: usize,
    pub lines: u64,
    pub fivexx: u64,
    unparsed: u64,
    /// The first parse error (names a field, never the line's content).
    example: Option<String>,
    forbidden: bool,
}

impl LogTally {
    pub fn new(pods: usize) -> Self {
        LogTally {
            pods,
            ..Default::default()
        }
    }

    /// Handles one input; returns the fact to feed to the engine and the
    /// capture, if any.
    pub fn take(&mut self, input: LogInput) -> Option<Fact> {
        match input {
            LogInput::Fact(f) => {
                self.lines += 1;
                if f.status >= 500 {
                    self.fivexx += 1;
                }
                Some(Fact::ProxyLog(*f))
            }
            LogInput::Unparsed { error } => {
                self.unparsed += 1;
                self.example.get_or_insert_with(|| error.to_string());
                None
            }
            LogInput::Forbidden(line) => {
                if !self.forbidden {
                    self.forbidden = true;
                    eprintln!("warning: {line}");
                }
                None
            }
            LogInput::Ended { pod, reason } => {
                tracing::info!(%pod, %reason, "proxy log: stopped following");
                None
            }
        }
    }

    /// The end-of-session lines for stderr.
    pub fn report(&self) -> Vec<String> {
        let mut out = vec![format!(
            "proxy logs: {} line(s) from {} pod(s), {} with a 5xx",
            self.lines, self.pods, self.fivexx
        )];
        if self.unparsed > 0 {
            out.push(format!(
                "warning: {} proxy log line(s) not parsed (not nginx `combined` nor ingress-nginx `upstreaminfo`?), e.g. {}",
                self.unparsed,
                self.example.as_deref().unwrap_or("?")
            ));
        }
        out
    }
}

/// One line per 5xx a proxy logged (trace and node), with the proxy's
/// own words when it has them (Envoy's flags, HAProxy's termination state).
pub fn fact_line(f: &ProxyLogFact) -> String {
    let upstream = match (f.last_upstream(), f.proxy_words()) {
        (_, Some(words)) => format!(" {words}"),
        (Some(u), None) => format!(" upstream {u}"),
        (None, None) => " no upstream".to_string(),
    };
    let tries = if f.upstream_addrs.len() > 1 {
        format!(" after {} tries", f.upstream_addrs.len())
    } else {
        String::new()
    };
    format!(
        "{}  {:<14} {:<15} {}/{} http={} client {}{upstream}{tries}",
        fivexx_core::report::format_time(f.at_ns),
        f.node.as_deref().unwrap_or("-"),
        "proxy_log",
        f.namespace,
        f.pod,
        f.status,
        f.client.map_or("-".to_string(), |c| c.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_stamps_pass_and_reconnects_repeat_nothing() {
        let mut s = Seen::since(10);
        assert!(!s.fresh(9), "before the session");
        assert!(
            s.fresh(10) && s.fresh(20) && s.fresh(20),
            "equal stamps both pass"
        );
        s.reconnect();
        // The server resends from the second: 10, 20, 20, then new lines.
        assert!(!s.fresh(10) && !s.fresh(20) && !s.fresh(20));
        assert!(s.fresh(20), "a third line stamped 20 is new");
        assert!(s.fresh(30));
        s.reconnect();
        assert!(!s.fresh(20) && !s.fresh(30) && s.fresh(31));
    }
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kube::api::ObjectMeta;

    fn pod(labels: &[(&str, &str)], containers: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("ingress-nginx".into()),
                name: Some("ingress-nginx-controller-x".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: containers
                    .iter()
                    .map(|c| Container {
                        name: c.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_nginx_proxies_are_followed_with_their_container() {
        let p = ProxyPod::nginx(&pod(
            &[("app.kubernetes.io/name", "ingress-nginx")],
            &["controller"],
        ))
        .unwrap();
        assert_eq!(p.container, None);
        assert_eq!(p.node.as_deref(), Some("node-1"));
        let p = ProxyPod::nginx(&pod(
            &[("app", "nginx-ingress")],
            &["sidecar", "controller"],
        ))
        .unwrap();
        assert_eq!(p.container.as_deref(), Some("controller"));
        assert!(ProxyPod::nginx(&pod(&[("app", "traefik")], &["traefik"])).is_none());
    }

    #[test]
    fn lines_before_the_session_are_skipped_and_garbage_counted() {
        let p = ProxyPod::nginx(&pod(&[("app", "ingress-nginx")], &["c"])).unwrap();
        let line = |stamp: &str, status: u16| {
            format!("{stamp} 10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] \"GET /p HTTP/1.1\" {status} 150 \"-\" \"wrk\" 75 0.001 [shop-web-80] [] 10.244.0.12:8080 0 0.001 {status} ab\n")
        };
        let start: i64 = 1_795_591_154_300_000_000;
        let mut after = Seen::since(start);
        assert!(to_input(&line("2026-11-25T07:19:14.200000000Z", 200), &p, &mut after).is_none());
        let mut tally = LogTally::new(1);
        for input in [
            to_input(&line("2026-11-25T07:19:14.313212345Z", 502), &p, &mut after),
            to_input(&line("2026-11-25T07:19:14.400000000Z", 200), &p, &mut after),
            // A reconnect repeats lines already seen.
            {
                after.reconnect();
                to_input(&line("2026-11-25T07:19:14.313212345Z", 502), &p, &mut after)
            },
            to_input(
                "2026-11-25T07:19:15.000000000Z GET /secret?token=1 200\n",
                &p,
                &mut after,
            ),
            to_input("\n", &p, &mut after),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(Fact::ProxyLog(f)) = tally.take(input) {
                assert_eq!(f.pod, "ingress-nginx-controller-x");
                assert!(f.precise_time);
            }
        }
        assert_eq!((tally.lines, tally.fivexx, tally.unparsed), (2, 1, 1));
        let report = tally.report().join("\n");
        assert!(
            report.contains("1 proxy log line(s) not parsed"),
            "{report}"
        );
        assert!(!report.contains("secret"), "{report}");
    }
}
