//! The rules: one failed connection plus the cluster timeline gives a cause.
//!
//! Precision comes first: every cause needs a lifecycle fact about the pod
//! (or Service) behind the address at the right time. Without one the
//! failure is `Unexplained`, with a note saying what was looked for.
//!
//! This file is longer than 600 lines because the rules are the methods of
//! one `PodCase`, tried in order by `classify_mechanism`: read together,
//! their order is the precedence of the causes.

use super::classification::api;
pub(crate) use super::classification::Classification;
use super::config::{ExplainConfig, SECOND};
use super::hook::{FailedHook, FAILED_PRESTOP_HOOK};
use super::services::classify_service;
use super::verdict::{Cause, Confidence, FailedConnection, FailureKind, IdleClose};
use crate::event::{Errno, SignalResult};
use crate::model::timeline::{ClusterTimeline, PodTimeline, SignalSeen};
use crate::model::FactSource;
use crate::model::{Evidence, Observation};
use std::net::IpAddr;
use std::sync::Arc;

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// What the rules look at: the pod that owned the address when the
/// attempt started, and the evidence gathered about it so far.
struct PodCase<'a> {
    pod: &'a PodTimeline,
    addr: IpAddr,
    /// The failure, and when its attempt started.
    t: i64,
    attempt: i64,
    tl: &'a ClusterTimeline,
    cfg: &'a ExplainConfig,
    horizon: i64,
    ev: Vec<Evidence>,
}

impl<'a> PodCase<'a> {
    fn new(
        pod: &'a PodTimeline,
        addr: IpAddr,
        t: i64,
        attempt: i64,
        tl: &'a ClusterTimeline,
        cfg: &'a ExplainConfig,
        horizon: i64,
    ) -> PodCase<'a> {
        let mut ev: Vec<Evidence> = Vec::with_capacity(6);
        let ip_since = pod
            .ips
            .iter()
            .find(|(_, ip)| *ip == addr)
            .map_or(pod.created_ns.unwrap_or(t), |(at, _)| *at);
        ev.push(api(
            ip_since,
            Observation::Owns {
                addr,
                pod: pod.display.clone(),
            },
        ));
        PodCase {
            pod,
            addr,
            t,
            attempt,
            tl,
            cfg,
            horizon,
            ev,
        }
    }

    /// The case of an upstream an access log names (no failed connection
    /// was seen): the pod that owned `addr` when the attempt began; `None`
    /// for a Service address or an address nobody owned.
    fn of_logged_upstream(
        addr: IpAddr,
        at_ns: i64,
        attempt: i64,
        tl: &'a ClusterTimeline,
        cfg: &'a ExplainConfig,
        horizon: i64,
    ) -> Option<PodCase<'a>> {
        if tl.service_of_ip(addr).is_some() {
            return None;
        }
        let pod = tl.owner_at(addr, attempt, cfg.skew_ns)?;
        Some(PodCase::new(pod, addr, at_ns, attempt, tl, cfg, horizon))
    }

    fn uid(&self) -> Option<String> {
        Some(self.pod.uid.clone())
    }

    fn verdict(self, cause: Cause, confidence: Confidence, note: Option<String>) -> Classification {
        Classification {
            cause,
            confidence,
            pod_uid: self.uid(),
            evidence: self.ev,
            service: None,
            no_endpoints_why: None,
            note,
        }
    }

    fn term(&self) -> Option<i64> {
        self.pod.termination_ns().filter(|x| *x <= self.horizon)
    }

    fn sigterm(&self) -> Option<&'a SignalSeen> {
        self.pod
            .sigterm
            .as_ref()
            .filter(|s| s.at_ns <= self.horizon)
    }

    fn sigterm_ignored(&self) -> bool {
        self.sigterm()
            .is_some_and(|s| s.result == Some(SignalResult::Ignored))
    }

    /// Rule 1: an OOM kill of the pod around the failure.
    fn oom(&mut self) -> Option<Confidence> {
        let (oom_at, victim) = self.pod.oom.as_ref()?;
        let (t, skew) = (self.t, self.cfg.skew_ns);
        if *oom_at > self.horizon || t < oom_at - skew || t > oom_at + self.cfg.oom_window_ns {
            return None;
        }
        let who = victim
            .as_ref()
            .map_or(String::new(), |v| format!(" pid {} ({})", v.pid, v.comm));
        let from_kernel = victim.is_some();
        self.ev.push(Evidence {
            at_ns: *oom_at,
            source: if from_kernel {
                FactSource::Node(Arc::from(self.pod.node.clone().unwrap_or_default()))
            } else {
                FactSource::Api
            },
            fact: Observation::text(format!("OOM kill of{who} in {}", self.pod.display)),
        });
        Some(if from_kernel {
            Confidence::High
        } else {
            Confidence::Medium
        })
    }

    /// The SIGTERM, the deletion, and a cordon of the pod's node.
    fn lifecycle_evidence(&mut self) {
        if let Some(s) = self.sigterm() {
            self.ev.push(s.evidence.clone());
        }
        if let Some(d) = self
            .pod
            .deleting_evidence
            .as_ref()
            .filter(|d| d.at_ns <= self.horizon)
        {
            self.ev.push(d.clone());
        }
        if let (Some(node), Some(term)) = (&self.pod.node, self.term()) {
            if let Some(c) = self.tl.cordoned_at(node, term, self.cfg.skew_ns) {
                self.ev
                    .push(api(c, Observation::Cordoned(Arc::from(node.as_str()))));
            }
        }
    }

    /// Rule 2: resets at a lifecycle SIGKILL: the grace period expired (or
    /// SIGTERM had been ignored until then).
    fn killed(mut self) -> Result<Classification, Self> {
        let (t, skew) = (self.t, self.cfg.skew_ns);
        let kill = self
            .pod
            .sigkill_between(
                t - self.cfg.kill_window_ns - skew,
                (t + skew).min(self.horizon),
            )
            .filter(|k| k.from_lifecycle());
        let (Some(kill), Some(term)) = (kill, self.term()) else {
            return Err(self);
        };
        self.ev.push(kill.evidence.clone());
        let after = kill.at_ns - term;
        if self.sigterm_ignored() {
            let note = format!(
                "SIGTERM was ignored; SIGKILL came {:.1} s later",
                secs(after)
            );
            return Ok(self.verdict(Cause::SigtermIgnored, Confidence::High, Some(note)));
        }
        let confidence = match self.pod.grace_period_s() {
            Some(g) => {
                let expected = i64::from(g) * 1_000_000_000;
                if (after - expected).abs() <= self.cfg.grace_tolerance_ns + skew {
                    Confidence::High
                } else {
                    Confidence::Low
                }
            }
            None => Confidence::Medium,
        };
        let note = format!("SIGKILL {:.1} s after termination began", secs(after));
        Ok(self.verdict(Cause::SigkillAtGraceExpiry, confidence, Some(note)))
    }

    /// Rule 3-P: the address is a proxy's (it answered clients) and its
    /// pod was terminating: the clients, or the load balancer in front,
    /// still sent to a proxy replica that had stopped accepting or closed
    /// their connections. Before the load-balancer rule: a proxy's
    /// clients are outside the cluster too, but what must change is the
    /// proxy's own shutdown.
    fn proxy_terminated(mut self, f: &FailedConnection, term: i64) -> Classification {
        let (attempt, pod) = (self.attempt, self.pod);
        self.ev.push(Evidence {
            at_ns: attempt,
            source: FactSource::Node(Arc::from(pod.node.clone().unwrap_or_default())),
            fact: Observation::text(format!(
                "{} is the proxy {}: it answered clients' requests",
                self.addr, pod.display
            )),
        });
        let exited = pod
            .exits
            .iter()
            .filter(|x| x.at_ns >= term - self.cfg.skew_ns && x.at_ns <= attempt + self.cfg.skew_ns)
            .map(|x| x.at_ns)
            .min();
        if let Some(x) = exited {
            self.ev.push(Evidence {
                at_ns: x,
                source: FactSource::Node(Arc::from(pod.node.clone().unwrap_or_default())),
                fact: Observation::text(format!("the processes of {} exited", pod.display)),
            });
        }
        let how = match f.kind {
            FailureKind::Reset => "reset the client's connection",
            FailureKind::Refused => "refused the client's new connection",
            _ => "left the client's connect unanswered",
        };
        let exit_note = exited.map_or(String::new(), |x| {
            format!(
                " (its processes exited {:.1} s after termination began)",
                secs((x - term).max(0))
            )
        });
        let note = format!(
            "the proxy pod {} {how} {:.1} s after its termination began{exit_note}: clients still sent to it, so it shut down before they had moved to the other replicas",
            pod.display_name(),
            secs((attempt - term).max(0))
        );
        let confidence = if self.sigterm().is_some() {
            Confidence::High
        } else {
            Confidence::Medium
        };
        self.verdict(Cause::ProxyTerminated, confidence, Some(note))
    }

    /// Rule 3-LB: a new connection from outside the cluster (no pod, no
    /// proxy, no Service has its address) into a terminating pod that
    /// failed: an external load balancer in IP mode (an ALB or NLB target
    /// group, a NEG) still had the pod as a target. Before the proxy
    /// rules, because no proxy of the cluster made the connection: the
    /// load balancer answered its client itself, and no peek or proxy log
    /// in the cluster saw that 5xx.
    fn lb_deregistration(mut self, f: &FailedConnection, term: i64) -> Classification {
        let (attempt, skew, lb) = (self.attempt, self.cfg.skew_ns, f.tuple.saddr);
        self.ev.push(Evidence {
            at_ns: attempt,
            source: FactSource::Node(Arc::from(self.pod.node.clone().unwrap_or_default())),
            fact: Observation::text(format!(
                "{lb} is no pod's, Service's or proxy's address: a load balancer outside the cluster sending to the pod's IP directly"
            )),
        });
        let removal = self
            .tl
            .unroutable_since(self.addr, term - skew)
            .filter(|r| *r <= self.horizon);
        let left = match removal {
            Some(r) => {
                self.ev.push(api(r, Observation::LeftEndpoints(self.addr)));
                format!(
                    ", {:.1} s after the address left the endpoints",
                    secs((attempt - r).max(0))
                )
            }
            None => String::new(),
        };
        let note = format!(
            "the external load balancer {lb} still sent a new connection here {:.1} s after termination began{left}: its target deregistration lags; it answered its client itself, outside the cluster (no peek or proxy log here sees that 5xx)",
            secs((attempt - term).max(0))
        );
        let confidence = if removal.is_some() || self.sigterm().is_some() {
            Confidence::High
        } else {
            Confidence::Medium
        };
        self.verdict(Cause::LbDeregistrationLag, confidence, Some(note))
    }

    /// Rule 3a: refused after termination began: the proxy still routed here.
    fn refused_while_terminating(mut self, term: i64) -> Classification {
        let (attempt, skew) = (self.attempt, self.cfg.skew_ns);
        let removal = self
            .tl
            .unroutable_since(self.addr, term - skew)
            .filter(|r| *r <= self.horizon);
        let (confidence, note) = match removal {
            Some(r) if attempt > r + self.cfg.proxy_propagation_ns => (
                Confidence::Low,
                Some(format!(
                    "the proxy still routed here {:.1} s after the address left the endpoints",
                    secs(attempt - r)
                )),
            ),
            Some(r) => {
                self.ev.push(api(r, Observation::LeftEndpoints(self.addr)));
                (Confidence::High, None)
            }
            None => (
                if self.tl.routable_at(self.addr, attempt) == Some(true) {
                    Confidence::High
                } else {
                    Confidence::Medium
                },
                None,
            ),
        };
        self.verdict(Cause::EndpointLagNetnsAlive, confidence, note)
    }

    /// Rule 3b: no answer from a terminating pod: its netns is gone (or its
    /// processes exited). A connect the proxy itself gave up on in
    /// SYN_SENT (its own connect timeout, shorter than the kernel's first
    /// SYN retransmit) counts too: to a pod whose netns is gone no RST can
    /// come back, so silence is all the kernel sees.
    fn silent_while_terminating(mut self, f: &FailedConnection, term: i64) -> Classification {
        let (attempt, skew, horizon) = (self.attempt, self.cfg.skew_ns, self.horizon);
        let pod = self.pod;
        let gone = pod
            .gone_ns
            .filter(|g| *g <= attempt + skew && *g <= horizon);
        let exited = pod
            .exits
            .iter()
            .filter(|x| x.at_ns >= term - skew && x.at_ns <= attempt + skew)
            .map(|x| x.at_ns)
            .max();
        if let Some(g) = gone {
            self.ev.push(api(
                g,
                Observation::text(format!("{} gone from the API", pod.display)),
            ));
        } else if let Some(x) = exited {
            self.ev.push(Evidence {
                at_ns: x,
                source: FactSource::Node(Arc::from(pod.node.clone().unwrap_or_default())),
                fact: Observation::text(format!("the processes of {} exited", pod.display)),
            });
        }
        if gone.is_none() && exited.is_none() {
            return Classification::unexplained(
                "connect timed out to a terminating pod whose processes were still running",
                self.uid(),
            );
        }
        let silent_close = f.kind == FailureKind::ConnectFailed && f.syn_retransmits == 0;
        let confidence = if gone.is_some() && !silent_close {
            Confidence::High
        } else {
            Confidence::Medium
        };
        self.verdict(Cause::EndpointLagNetnsGone, confidence, None)
    }

    /// Rule 3c: a pooled connection reset by a pod shutting down (one that
    /// ignored SIGTERM is not shutting down yet).
    fn reset_while_terminating(
        self,
        f: &FailedConnection,
        term: i64,
    ) -> Result<Classification, Self> {
        if self.sigterm_ignored() {
            return Err(self);
        }
        let end = self
            .pod
            .last_exit()
            .map(|x| x.at_ns)
            .filter(|x| *x >= term)
            .unwrap_or(i64::MAX);
        if self.t > end.saturating_add(self.cfg.kill_window_ns + self.cfg.skew_ns) {
            return Err(self);
        }
        let confidence = if f.server_reset.is_some() || self.sigterm().is_some() {
            Confidence::High
        } else {
            Confidence::Medium
        };
        Ok(self.verdict(Cause::KeepAliveRace, confidence, None))
    }

    /// Rule 4: refused by a pod that had just started (and was not terminating).
    fn starting(mut self) -> Result<Classification, Self> {
        let (attempt, skew, pod) = (self.attempt, self.cfg.skew_ns, self.pod);
        let start = [pod.started_ns, pod.created_ns, pod.first_ready_ns()]
            .into_iter()
            .flatten()
            .filter(|s| *s <= self.horizon)
            .min();
        let Some(start) =
            start.filter(|s| attempt >= s - skew && attempt <= s + self.cfg.startup_window_ns)
        else {
            return Err(self);
        };
        self.ev.push(api(
            start,
            Observation::text(format!("{} started", pod.display)),
        ));
        let ready = pod.first_ready_ns().filter(|r| *r <= attempt + skew);
        if let Some(r) = ready {
            self.ev.push(api(
                r,
                Observation::text(format!("{} reported Ready", pod.display)),
            ));
        }
        let confidence = if ready.is_some() || self.tl.routable_at(self.addr, attempt) == Some(true)
        {
            Confidence::High
        } else {
            Confidence::Medium
        };
        let note = format!(
            "refused {:.1} s after the pod started",
            secs(attempt - start)
        );
        Ok(self.verdict(Cause::NotReadyAtStart, confidence, Some(note)))
    }

    /// Rule 6: a pooled connection the pod itself had just closed for
    /// being idle, reset when the proxy wrote on it: the backend's idle
    /// timeout is shorter than the proxy's. Only after the shutdown rules,
    /// so a pod that closes its connections as it stops stays a
    /// keep-alive race at shutdown.
    fn idle_timeout(mut self, f: &FailedConnection, c: IdleClose) -> Classification {
        let idle = c.idle_us as f64 / 1e6;
        let after_ms = (f.at_ns - c.at_ns) as f64 / 1e6;
        self.ev.push(Evidence {
            at_ns: c.at_ns,
            source: FactSource::Node(Arc::from(self.pod.node.clone().unwrap_or_default())),
            fact: Observation::text(format!(
                "{} closed the pooled connection {}:{} <- {}:{} after it was idle {idle:.1} s{}",
                self.pod.display,
                f.tuple.daddr,
                f.tuple.dport,
                f.tuple.saddr,
                f.tuple.sport,
                if c.unread {
                    ", with the proxy's request already arrived unread (RST at once)"
                } else {
                    ""
                }
            )),
        });
        let note = format!(
            "the backend closed a pooled connection after it was idle {idle:.1} s; the proxy reused it {after_ms:.1} ms later and drew a RST"
        );
        let confidence = if f.server_reset.is_some() {
            Confidence::High
        } else {
            Confidence::Medium
        };
        self.verdict(Cause::KeepAliveIdleTimeout, confidence, Some(note))
    }

    /// Rule 7: silence from a pod whose node stopped answering without a
    /// drain: its agent's stream went quiet before the attempt, the pod was
    /// not terminating then, and the node was not cordoned. The endpoints
    /// still listed the pod, so the proxies kept sending SYNs into a node
    /// that was gone.
    fn node_lost(mut self, silent: bool) -> Result<Classification, Self> {
        let (attempt, skew, horizon) = (self.attempt, self.cfg.skew_ns, self.horizon);
        let Some(node) = self.pod.node.clone().filter(|_| silent) else {
            return Err(self);
        };
        let Some(quiet) = self
            .tl
            .node_quiet_since(&node)
            .filter(|q| *q <= horizon && attempt >= q - skew)
        else {
            return Err(self);
        };
        let drained = self.tl.cordoned_at(&node, quiet - skew, 0).is_some();
        if drained || self.term().is_some_and(|t| t <= quiet + skew) {
            return Err(self);
        }
        let why = self
            .tl
            .agent_gone(&node)
            .map_or(String::new(), |g| g.reason.clone());
        self.ev.push(api(
            quiet,
            Observation::text(format!(
                "node {node} stopped answering: its agent's stream went quiet ({why}); no drain, no deletion of {}",
                self.pod.display
            )),
        ));
        let listed = self.tl.routable_at(self.addr, attempt) == Some(true);
        let removed = self
            .tl
            .unroutable_since(self.addr, quiet)
            .filter(|r| *r <= horizon);
        let not_ready = self
            .tl
            .not_ready_since(&node, quiet - skew)
            .filter(|r| *r <= horizon);
        if let Some(nr) = not_ready {
            self.ev
                .push(api(nr, Observation::text(format!("Node {node} NotReady"))));
        }
        if let Some(r) = removed {
            self.ev.push(api(r, Observation::LeftEndpoints(self.addr)));
        }
        let kept = match (removed, not_ready) {
            (Some(r), Some(_)) => format!(
                "; the endpoints kept it {:.1} s, until the Node went NotReady",
                secs(r - quiet)
            ),
            (Some(r), None) => format!("; the endpoints kept it {:.1} s", secs(r - quiet)),
            (None, _) => "; the endpoints still listed it".to_string(),
        };
        let note = format!(
            "node {node} stopped answering {:.1} s before this attempt (its agent's stream ended, no drain, no pod deletion){kept}",
            secs((attempt - quiet).max(0))
        );
        let confidence = if listed {
            Confidence::High
        } else {
            Confidence::Medium
        };
        Ok(self.verdict(Cause::NodeLost, confidence, Some(note)))
    }

    /// No rule matched: say what was looked for.
    fn unexplained(self, f: &FailedConnection) -> Classification {
        let (attempt, skew, pod) = (self.attempt, self.cfg.skew_ns, self.pod);
        let note = match self.term() {
            Some(term) if attempt < term - skew => format!(
                "{} was not terminating yet ({:.1} s before termination began)",
                pod.display_name(),
                secs(term - attempt)
            ),
            Some(_) => format!(
                "{} was terminating, but a {} failure has no rule here",
                pod.display_name(),
                f.kind.name()
            ),
            None => format!(
                "{} was not terminating, starting, or OOM-killed",
                pod.display_name()
            ),
        };
        Classification::unexplained(note, self.uid())
    }
}

/// A failed new connection whose client is outside the cluster: no pod,
/// Service or peeked proxy has its address (an external load balancer in
/// IP mode, or its health checks).
pub(crate) fn from_outside(
    f: &FailedConnection,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
) -> bool {
    f.kind.is_new_connection()
        && tl.is_outside_cluster(f.tuple.saddr)
        && !cfg.peeked_proxies.contains(&f.tuple.saddr)
}

/// Classifies `f` using only facts at or before `horizon`.
pub(crate) fn classify(
    f: &FailedConnection,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Classification {
    let c = classify_mechanism(f, tl, cfg, horizon);
    failed_prestop(c, tl, cfg, horizon)
}

/// Rule 5: endpoint lag, or a keep-alive race at shutdown, in a pod whose
/// preStop hook failed (the kubelet's `FailedPreStopHook` Event between its
/// deletion and its SIGTERM): the hook that should have covered the lag
/// never ran, and SIGTERM came at once. The mechanism stays in the
/// evidence; the cause is the hook, because that is what to fix.
fn failed_prestop(
    mut c: Classification,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Classification {
    if !matches!(
        c.cause,
        Cause::EndpointLagNetnsAlive | Cause::EndpointLagNetnsGone | Cause::KeepAliveRace
    ) {
        return c;
    }
    let Some(pod) = c.pod_uid.as_deref().and_then(|u| tl.pod(u)) else {
        return c;
    };
    let (Some((deleted, _)), Some(term)) = (pod.deleting, pod.termination_ns()) else {
        return c;
    };
    let sigterm = pod.sigterm.as_ref().map_or(term, |s| s.at_ns);
    let skew = cfg.skew_ns;
    let to = (sigterm.max(deleted) + skew + SECOND).min(horizon);
    let Some((at, message)) = pod.event_between(FAILED_PRESTOP_HOOK, deleted - skew, to) else {
        return c;
    };
    let hook = FailedHook::parse(message);
    c.evidence.push(api(
        at,
        Observation::text(format!(
            "{FAILED_PRESTOP_HOOK} for {}: preStop {} failed ({})",
            pod.display, hook.hook, hook.error
        )),
    ));
    let held = hook.sleep_s.map_or(String::new(), |s| {
        format!(", where the hook should have held it {s} s")
    });
    c.note = Some(format!(
        "the preStop hook {} failed ({}): SIGTERM came {:.1} s after deletion{held}; {}",
        hook.hook,
        hook.error,
        secs((sigterm - deleted).max(0)),
        c.cause.label()
    ));
    c.cause = Cause::PrestopFailed;
    c
}

/// The mechanism of `f`: which lifecycle fact its failure follows.
fn classify_mechanism(
    f: &FailedConnection,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Classification {
    let addr = f.tuple.daddr;
    let attempt = f.attempt_ns();
    if let Some(svc) = tl.service_of_ip(addr) {
        return classify_service(f, tl, svc.clone(), f.at_ns);
    }
    let Some(pod) = tl.owner_at(addr, attempt, cfg.skew_ns) else {
        return Classification::unexplained(
            format!("no pod is known to have owned {addr} at that time"),
            None,
        );
    };
    let mut case = PodCase::new(pod, addr, f.at_ns, attempt, tl, cfg, horizon);
    if matches!(f.kind, FailureKind::Refused | FailureKind::Reset) {
        if let Some(confidence) = case.oom() {
            return case.verdict(Cause::OomKill, confidence, None);
        }
    }
    case.lifecycle_evidence();
    if let Some(term) = case.term().filter(|term| {
        tl.is_proxy(addr)
            && (f.kind.is_new_connection() || f.kind == FailureKind::Reset)
            && attempt >= term - cfg.skew_ns
    }) {
        return case.proxy_terminated(f, term);
    }
    let from_outside = from_outside(f, tl, cfg);
    if let Some(term) = case
        .term()
        .filter(|term| from_outside && attempt >= term - cfg.skew_ns)
    {
        return case.lb_deregistration(f, term);
    }
    if matches!(f.kind, FailureKind::Reset | FailureKind::Refused) && f.rst {
        case = match case.killed() {
            Ok(c) => return c,
            Err(case) => case,
        };
    }
    if let Some(term) = case.term().filter(|term| attempt >= term - cfg.skew_ns) {
        match f.kind {
            FailureKind::Refused if f.rst || f.errno.is_some_and(Errno::is_refused) => {
                return case.refused_while_terminating(term);
            }
            FailureKind::TimedOut | FailureKind::Unreachable | FailureKind::ConnectFailed => {
                return case.silent_while_terminating(f, term);
            }
            FailureKind::Reset => {
                case = match case.reset_while_terminating(f, term) {
                    Ok(c) => return c,
                    Err(case) => case,
                };
            }
            _ => {}
        }
    }
    let silent = matches!(
        f.kind,
        FailureKind::TimedOut | FailureKind::Unreachable | FailureKind::ConnectFailed
    );
    case = match case.node_lost(silent) {
        Ok(c) => return c,
        Err(case) => case,
    };
    if let Some(c) = f.idle_close.filter(|_| f.kind == FailureKind::Reset) {
        return case.idle_timeout(f, c);
    }
    if f.kind == FailureKind::Refused && case.term().is_none_or(|x| x > attempt + cfg.skew_ns) {
        case = match case.starting() {
            Ok(c) => return c,
            Err(case) => case,
        };
    }
    case.unexplained(f)
}

/// A proxy's 5xx whose upstream (named by the access log) was a pod on a
/// node that had stopped answering when the request began: a request on a
/// pooled connection into a vanished node gets no answer and no reset,
/// and the proxy gives up at its read timeout.
pub(crate) fn classify_on_lost_node(
    addr: IpAddr,
    began_ns: i64,
    at_ns: i64,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Option<Classification> {
    let case = PodCase::of_logged_upstream(addr, at_ns, began_ns, tl, cfg, horizon)?;
    case.node_lost(true).ok()
}

/// A proxy's 502/504 whose upstream (named by the access log) closed the
/// connection without a reset: its process died mid-request. Only the
/// kill rules apply (an OOM kill, a lifecycle SIGKILL); anything else is
/// `None`, and the answer stays unexplained.
pub(crate) fn classify_closed_by_death(
    addr: IpAddr,
    at_ns: i64,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Option<Classification> {
    let mut case = PodCase::of_logged_upstream(addr, at_ns, at_ns, tl, cfg, horizon)?;
    if let Some(confidence) = case.oom() {
        return Some(case.verdict(Cause::OomKill, confidence, None));
    }
    case.lifecycle_evidence();
    case.killed().ok()
}
