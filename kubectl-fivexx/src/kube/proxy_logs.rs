//! `--proxy-logs`: follows the proxy pods' access logs through the API
//! (`pods/log`, follow, timestamps) and turns each line into a
//! [`Fact::ProxyLog`] for the session's fact stream.
//!
//! Why: the kernel peek reads the status line of plain HTTP/1.x answers
//! only. TLS and HTTP/2 client connections cannot be peeked, but the proxy
//! logs every answer with its status and the upstream(s) it tried, and
//! Envoy and HAProxy add their own word for what went wrong. The proxies
//! whose default formats are parsed are followed: nginx-based ones
//! (ingress-nginx's `upstreaminfo`, nginx's `combined`), Envoy-based ones
//! (Envoy Gateway, Istio, Contour: Envoy's, Istio's and Envoy Gateway's
//! default formats) and HAProxy's ingress controllers (`option httplog`).
//! The format is detected per line; a line in another format is counted
//! and reported once at the end, never fatal, and the proxy's own log
//! (Envoy's, HAProxy's notices) is skipped. A denied `pods/log` is one
//! warning line, and the session goes on without logs.
//!
//! This file is longer than 600 lines because its tests, pods shaped like
//! each controller's (ingress-nginx, Envoy Gateway, Istio, Contour, the
//! HAProxy controllers, the lab's), sit beside the selection they pin.

use std::time::Duration;

use fivexx_core::model::{Fact, ProxyLogFact};
use fivexx_core::proxylog::formats::Gateway;
use fivexx_core::proxylog::{parse_line, LogFormat, ProxyKind, ProxyLogError};
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
    /// The proxy its labels name (its lines' format is detected per line).
    pub kind: ProxyKind,
}

impl ProxyPod {
    /// The pod as a followed proxy, if its labels name a gateway product of
    /// the registry ([`fivexx_core::proxylog::formats::GATEWAYS`]: Envoy
    /// Gateway, Istio, Contour, Gateway API data planes, the HAProxy and
    /// nginx ingress controllers), with the container that writes its
    /// access log. Traefik and Kong log in formats this parser does not
    /// read: their pods are traced and peeked, not followed.
    pub fn of(pod: &Pod) -> Option<ProxyPod> {
        let m = &pod.metadata;
        let labels = m.labels.as_ref()?;
        let spec = pod.spec.as_ref();
        let containers: Vec<&str> = spec
            .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let gateway = Gateway::of_pod(|k| labels.get(k).map(String::as_str), &containers)?;
        Some(ProxyPod {
            namespace: m.namespace.clone()?,
            name: m.name.clone()?,
            node: spec.and_then(|s| s.node_name.clone()),
            container: gateway.log_container(&containers).map(str::to_string),
            kind: gateway.engine,
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
    /// The proxy's own log (not an access log): skipped.
    OwnLog,
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
        Err(ProxyLogError::NotAccessLog) => LogInput::OwnLog,
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
    /// The proxies' own log lines, skipped.
    own: u64,
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
                if f.account.status >= 500 {
                    self.fivexx += 1;
                }
                Some(Fact::ProxyLog(*f))
            }
            LogInput::Unparsed { error } => {
                self.unparsed += 1;
                self.example.get_or_insert_with(|| error.to_string());
                None
            }
            LogInput::OwnLog => {
                self.own += 1;
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
            let formats: Vec<&str> = LogFormat::all().map(LogFormat::name).collect();
            out.push(format!(
                "warning: {} proxy log line(s) not parsed (none of the default formats: {}), e.g. {}",
                self.unparsed,
                formats.join(", "),
                self.example.as_deref().unwrap_or("?")
            ));
        }
        out
    }
}

/// One line per 5xx a proxy logged (trace and node), with the proxy's
/// own words when it has them (Envoy's flags, HAProxy's termination state).
pub fn fact_line(f: &ProxyLogFact) -> String {
    let a = &f.account;
    let upstream = match (a.last_upstream(), a.words_text()) {
        (_, Some(words)) => format!(" {words}"),
        (Some(u), None) => format!(" upstream {u}"),
        (None, None) => " no upstream".to_string(),
    };
    let tries = if a.tries.len() > 1 {
        format!(" after {} tries", a.tries.len())
    } else {
        String::new()
    };
    format!(
        "{}  {:<14} {:<15} {}/{} http={} client {}{upstream}{tries}",
        fivexx_core::report::format_time(a.at_ns),
        f.node.as_deref().unwrap_or("-"),
        "proxy_log",
        f.namespace,
        f.pod,
        a.status,
        a.client.map_or("-".to_string(), |c| c.to_string()),
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
        let p = ProxyPod::of(&pod(
            &[("app.kubernetes.io/name", "ingress-nginx")],
            &["controller"],
        ))
        .unwrap();
        assert_eq!(p.container, None);
        assert_eq!(p.node.as_deref(), Some("node-1"));
        let p = ProxyPod::of(&pod(
            &[("app", "nginx-ingress")],
            &["sidecar", "controller"],
        ))
        .unwrap();
        assert_eq!(p.container.as_deref(), Some("controller"));
        assert_eq!(p.kind, ProxyKind::Nginx);
        assert!(ProxyPod::of(&pod(&[("app", "traefik")], &["traefik"])).is_none());
    }

    /// Pods shaped as each controller deploys its proxy: the right kind
    /// and the container that writes the access log.
    #[test]
    fn envoy_and_haproxy_proxies_are_followed_with_their_container() {
        for (labels, containers, kind, container) in [
            // Envoy Gateway (and the lab's pod).
            (
                vec![
                    ("app.kubernetes.io/name", "envoy"),
                    ("app.kubernetes.io/component", "proxy"),
                    ("app.kubernetes.io/managed-by", "envoy-gateway"),
                    ("gateway.envoyproxy.io/owning-gateway-name", "eg"),
                    ("gateway.envoyproxy.io/owning-gateway-namespace", "shop"),
                ],
                vec!["envoy", "shutdown-manager"],
                ProxyKind::Envoy,
                Some("envoy"),
            ),
            (
                vec![("gateway.envoyproxy.io/owning-gateway-name", "eg")],
                vec!["envoy"],
                ProxyKind::Envoy,
                None,
            ),
            // Istio: classic, and the Gateway API form.
            (
                vec![("app", "istio-ingressgateway"), ("istio", "ingressgateway")],
                vec!["istio-proxy"],
                ProxyKind::Envoy,
                None,
            ),
            (
                vec![("gateway.networking.k8s.io/gateway-name", "gw")],
                vec!["istio-proxy", "sidecar"],
                ProxyKind::Envoy,
                Some("istio-proxy"),
            ),
            // Contour's Envoy (Bitnami and quickstart).
            (
                vec![
                    ("app.kubernetes.io/name", "contour"),
                    ("app.kubernetes.io/component", "envoy"),
                ],
                vec!["shutdown-manager", "envoy"],
                ProxyKind::Envoy,
                Some("envoy"),
            ),
            (
                vec![("app", "envoy")],
                vec!["envoy"],
                ProxyKind::Envoy,
                None,
            ),
            // HAProxy: haproxytech's chart (the lab's pod), jcmoraisjr's.
            (
                vec![
                    ("app.kubernetes.io/name", "kubernetes-ingress"),
                    ("app.kubernetes.io/instance", "haproxy-kubernetes-ingress"),
                ],
                vec!["kubernetes-ingress-controller"],
                ProxyKind::Haproxy,
                None,
            ),
            (
                vec![("app.kubernetes.io/name", "haproxy-ingress")],
                vec!["haproxy-ingress", "access-logs"],
                ProxyKind::Haproxy,
                Some("haproxy-ingress"),
            ),
            // NGINX Gateway Fabric 1.x and 2.x.
            (
                vec![("app.kubernetes.io/name", "nginx-gateway")],
                vec!["nginx-gateway", "nginx"],
                ProxyKind::Nginx,
                Some("nginx"),
            ),
            (
                vec![("gateway.networking.k8s.io/gateway-name", "gw")],
                vec!["nginx"],
                ProxyKind::Nginx,
                None,
            ),
        ] {
            let p =
                ProxyPod::of(&pod(&labels, &containers)).unwrap_or_else(|| panic!("{labels:?}"));
            assert_eq!(p.kind, kind, "{labels:?}");
            assert_eq!(p.container.as_deref(), container, "{labels:?}");
        }
        for (labels, containers) in [
            (
                vec![("app.kubernetes.io/name", "kong")],
                vec!["proxy", "ingress-controller"],
            ),
            (vec![("app", "web")], vec!["nginx"]),
            (
                vec![("app.kubernetes.io/name", "kubernetes-ingress-controller")],
                vec!["ngrok"],
            ),
        ] {
            assert!(
                ProxyPod::of(&pod(&labels, &containers)).is_none(),
                "{labels:?}"
            );
        }
    }

    /// Real Envoy and HAProxy lines are facts; Envoy's own log is skipped
    /// without a warning; an unknown format is counted once.
    #[test]
    fn envoy_and_haproxy_lines_become_facts() {
        let p = ProxyPod::of(&pod(
            &[("gateway.envoyproxy.io/owning-gateway-name", "eg")],
            &["envoy"],
        ))
        .unwrap();
        let mut seen = Seen::since(0);
        let mut tally = LogTally::new(1);
        for line in [
            "2026-12-02T05:51:14.000000001Z [2026-12-02T05:51:13.634Z] \"GET /secret HTTP/1.1\" 503 UF 0 98 0 - \"10.1.0.7\" \"ua\" \"id\" \"host\" \"10.244.0.12:8080\"\n",
            "2026-12-02T05:51:14.000000002Z 10.1.0.7:40746 [02/Dec/2026:05:51:38.363] http shop-web-8080/SRV_1 0/0/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 \"GET /secret HTTP/1.1\"\n",
            "2026-12-02T05:51:14.000000003Z [2026-12-02 05:48:38.036][20811][warning][main] [source/server/server.cc:1059] no limit\n",
            "2026-12-02T05:51:14.000000004Z time=\"2026-12-02T05:51:14Z\" level=info msg=secret\n",
        ] {
            if let Some(Fact::ProxyLog(f)) = to_input(line, &p, &mut seen).and_then(|i| tally.take(i)) {
                let shown = fact_line(&f);
                assert!(
                    shown.contains("Envoy: 503 UF upstream 10.244.0.12:8080")
                        || shown.contains("HAProxy: 503 SC-- server shop-web-8080/SRV_1"),
                    "{shown}"
                );
                assert!(!shown.contains("secret"), "{shown}");
            }
        }
        assert_eq!(
            (tally.lines, tally.fivexx, tally.unparsed, tally.own),
            (2, 2, 1, 1)
        );
        let report = tally.report().join("\n");
        assert!(
            report.contains("1 proxy log line(s) not parsed"),
            "{report}"
        );
        assert!(report.contains("haproxy httplog"), "{report}");
        assert!(!report.contains("secret"), "{report}");
    }

    #[test]
    fn lines_before_the_session_are_skipped_and_garbage_counted() {
        let p = ProxyPod::of(&pod(&[("app", "ingress-nginx")], &["c"])).unwrap();
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
                assert!(f.account.precise_time);
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
