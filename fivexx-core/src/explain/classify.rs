//! The rules: one failed connection plus the cluster timeline gives a cause.
//!
//! Precision comes first: every cause needs a lifecycle fact about the pod
//! (or Service) behind the address at the right time. Without one the
//! failure is `Unexplained`, with a note saying what was looked for.

use super::verdict::{Cause, Confidence, FailedConnection, FailureKind};
use super::ExplainConfig;
use crate::event::SignalResult;
use crate::model::timeline::ClusterTimeline;
use crate::model::FactSource;
use crate::model::{Evidence, Observation};
use std::sync::Arc;

/// The cause of one failure, before episode and fix are attached.
#[derive(Debug)]
pub(crate) struct Classification {
    pub cause: Cause,
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
    pub pod_uid: Option<String>,
    /// Service (namespace, name) for `NoEndpoints`.
    pub service: Option<(String, String)>,
    pub note: Option<String>,
}

impl Classification {
    fn unexplained(note: impl Into<String>, pod_uid: Option<String>) -> Classification {
        Classification {
            cause: Cause::Unexplained,
            confidence: Confidence::High,
            evidence: Vec::new(),
            pod_uid,
            service: None,
            note: Some(note.into()),
        }
    }
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

fn api(at_ns: i64, fact: Observation) -> Evidence {
    Evidence {
        at_ns,
        source: FactSource::Api,
        fact,
    }
}

/// Classifies `f` using only facts at or before `horizon`.
pub(crate) fn classify(
    f: &FailedConnection,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Classification {
    let skew = cfg.skew_ns;
    let addr = f.tuple.daddr;
    let t = f.at_ns;
    // The proxy chose this address when it sent the SYN.
    let attempt = if f.kind == FailureKind::TimedOut {
        f.first_ns.saturating_sub(1_000_000_000).min(t)
    } else {
        f.first_ns.min(t)
    };

    if let Some(svc) = tl.service_of_ip(addr) {
        return classify_service(f, tl, svc.clone(), t);
    }
    let Some(pod) = tl.owner_at(addr, attempt, skew) else {
        return Classification::unexplained(
            format!("no pod is known to have owned {addr} at that time"),
            None,
        );
    };
    let uid = Some(pod.uid.clone());
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

    // 1. OOM kill of the pod around the failure.
    if matches!(f.kind, FailureKind::Refused | FailureKind::Reset) {
        if let Some((oom_at, victim)) = &pod.oom {
            if *oom_at <= horizon && t >= oom_at - skew && t <= oom_at + cfg.oom_window_ns {
                let who = victim
                    .as_ref()
                    .map_or(String::new(), |v| format!(" pid {} ({})", v.pid, v.comm));
                let from_kernel = victim.is_some();
                ev.push(Evidence {
                    at_ns: *oom_at,
                    source: if from_kernel {
                        FactSource::Node(Arc::from(pod.node.clone().unwrap_or_default()))
                    } else {
                        FactSource::Api
                    },
                    fact: Observation::text(format!("OOM kill of{who} in {}", pod.display)),
                });
                return Classification {
                    cause: Cause::OomKill,
                    confidence: if from_kernel {
                        Confidence::High
                    } else {
                        Confidence::Medium
                    },
                    evidence: ev,
                    pod_uid: uid,
                    service: None,
                    note: None,
                };
            }
        }
    }

    let term = pod.termination_ns().filter(|x| *x <= horizon);
    let sigterm = pod.sigterm.as_ref().filter(|s| s.at_ns <= horizon);
    if let Some(s) = sigterm {
        ev.push(s.evidence.clone());
    }
    if let Some(d) = pod
        .deleting_evidence
        .as_ref()
        .filter(|d| d.at_ns <= horizon)
    {
        ev.push(d.clone());
    }
    if let Some(node) = &pod.node {
        if let Some(term) = term {
            if let Some(c) = tl.cordoned_at(node, term, skew) {
                ev.push(api(c, Observation::Cordoned(Arc::from(node.as_str()))));
            }
        }
    }

    // 2. Resets at a lifecycle SIGKILL.
    if matches!(f.kind, FailureKind::Reset | FailureKind::Refused) && f.rst {
        let kill = pod
            .sigkill_between(t - cfg.kill_window_ns - skew, (t + skew).min(horizon))
            .filter(|k| k.from_lifecycle());
        if let (Some(kill), Some(term)) = (kill, term) {
            ev.push(kill.evidence.clone());
            let after = kill.at_ns - term;
            let ignored = sigterm.is_some_and(|s| s.result == Some(SignalResult::Ignored));
            if ignored {
                return Classification {
                    cause: Cause::SigtermIgnored,
                    confidence: Confidence::High,
                    evidence: ev,
                    pod_uid: uid,
                    service: None,
                    note: Some(format!(
                        "SIGTERM was ignored; SIGKILL came {:.1} s later",
                        secs(after)
                    )),
                };
            }
            let confidence = match pod.grace_period_s() {
                Some(g) => {
                    let expected = i64::from(g) * 1_000_000_000;
                    if (after - expected).abs() <= cfg.grace_tolerance_ns + skew {
                        Confidence::High
                    } else {
                        Confidence::Low
                    }
                }
                None => Confidence::Medium,
            };
            return Classification {
                cause: Cause::SigkillAtGraceExpiry,
                confidence,
                evidence: ev,
                pod_uid: uid,
                service: None,
                note: Some(format!(
                    "SIGKILL {:.1} s after termination began",
                    secs(after)
                )),
            };
        }
    }

    // 3. After termination began.
    if let Some(term) = term {
        if attempt >= term - skew {
            match f.kind {
                FailureKind::Refused if f.rst || f.errno == Some(111) => {
                    let removal = tl
                        .unroutable_since(addr, term - skew)
                        .filter(|r| *r <= horizon);
                    let (confidence, note) = match removal {
                        Some(r) if attempt > r + cfg.proxy_propagation_ns => (
                            Confidence::Low,
                            Some(format!(
                                "the proxy still routed here {:.1} s after the address left the endpoints",
                                secs(attempt - r)
                            )),
                        ),
                        Some(r) => {
                            ev.push(api(r, Observation::LeftEndpoints(addr)));
                            (Confidence::High, None)
                        }
                        None => (
                            if tl.routable_at(addr, attempt) == Some(true) {
                                Confidence::High
                            } else {
                                Confidence::Medium
                            },
                            None,
                        ),
                    };
                    return Classification {
                        cause: Cause::EndpointLagNetnsAlive,
                        confidence,
                        evidence: ev,
                        pod_uid: uid,
                        service: None,
                        note,
                    };
                }
                // A connect the proxy itself gave up on in SYN_SENT (its own
                // connect timeout, shorter than the kernel's first SYN
                // retransmit) counts too: to a pod whose netns is gone no
                // RST can come back, so silence is all the kernel sees.
                FailureKind::TimedOut | FailureKind::Unreachable | FailureKind::ConnectFailed => {
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
                        ev.push(api(
                            g,
                            Observation::text(format!("{} gone from the API", pod.display)),
                        ));
                    } else if let Some(x) = exited {
                        ev.push(Evidence {
                            at_ns: x,
                            source: FactSource::Node(Arc::from(
                                pod.node.clone().unwrap_or_default(),
                            )),
                            fact: Observation::text(format!(
                                "the processes of {} exited",
                                pod.display
                            )),
                        });
                    }
                    if gone.is_some() || exited.is_some() {
                        let silent_close =
                            f.kind == FailureKind::ConnectFailed && f.syn_retransmits == 0;
                        return Classification {
                            cause: Cause::EndpointLagNetnsGone,
                            confidence: if gone.is_some() && !silent_close {
                                Confidence::High
                            } else {
                                Confidence::Medium
                            },
                            evidence: ev,
                            pod_uid: uid,
                            service: None,
                            note: None,
                        };
                    }
                    return Classification::unexplained(
                        "connect timed out to a terminating pod whose processes were still running",
                        uid,
                    );
                }
                // A pod that ignored SIGTERM is not shutting down yet.
                FailureKind::Reset
                    if !sigterm.is_some_and(|s| s.result == Some(SignalResult::Ignored)) =>
                {
                    let end = pod
                        .last_exit()
                        .map(|x| x.at_ns)
                        .filter(|x| *x >= term)
                        .unwrap_or(i64::MAX);
                    if t <= end.saturating_add(cfg.kill_window_ns + skew) {
                        return Classification {
                            cause: Cause::KeepAliveRace,
                            confidence: if f.server_reset_reason.is_some() || sigterm.is_some() {
                                Confidence::High
                            } else {
                                Confidence::Medium
                            },
                            evidence: ev,
                            pod_uid: uid,
                            service: None,
                            note: None,
                        };
                    }
                }
                _ => {}
            }
        }
    }

    // 4. Refused by a pod that had just started (and was not terminating).
    if f.kind == FailureKind::Refused && term.is_none_or(|x| x > attempt + skew) {
        let start = [pod.started_ns, pod.created_ns, pod.first_ready_ns()]
            .into_iter()
            .flatten()
            .filter(|s| *s <= horizon)
            .min();
        if let Some(start) = start {
            if attempt >= start - skew && attempt <= start + cfg.startup_window_ns {
                ev.push(api(
                    start,
                    Observation::text(format!("{} started", pod.display)),
                ));
                let ready = pod.first_ready_ns().filter(|r| *r <= attempt + skew);
                if let Some(r) = ready {
                    ev.push(api(
                        r,
                        Observation::text(format!("{} reported Ready", pod.display)),
                    ));
                }
                return Classification {
                    cause: Cause::NotReadyAtStart,
                    confidence: if ready.is_some() || tl.routable_at(addr, attempt) == Some(true) {
                        Confidence::High
                    } else {
                        Confidence::Medium
                    },
                    evidence: ev,
                    pod_uid: uid,
                    service: None,
                    note: Some(format!(
                        "refused {:.1} s after the pod started",
                        secs(attempt - start)
                    )),
                };
            }
        }
    }

    let note = match term {
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
    Classification::unexplained(note, uid)
}

fn classify_service(
    f: &FailedConnection,
    tl: &ClusterTimeline,
    svc: (String, String),
    t: i64,
) -> Classification {
    let name = format!("service {}/{}", svc.0, svc.1);
    if f.kind == FailureKind::Refused && !f.rst {
        let (ready, last_left) = tl.service_ready_count(&svc, t);
        if ready == 0 {
            if let Some(left) = last_left {
                return Classification {
                    cause: Cause::NoEndpoints,
                    confidence: Confidence::High,
                    evidence: vec![api(
                        left,
                        Observation::text(format!(
                            "the last ready endpoint of {name} left; none remained"
                        )),
                    )],
                    pod_uid: None,
                    service: Some(svc),
                    note: None,
                };
            }
        }
        return Classification::unexplained(
            format!("refused by {name}, which had {ready} ready endpoints"),
            None,
        );
    }
    Classification::unexplained(
        format!("{} failure to {name} (virtual IP): no rule", f.kind.name()),
        None,
    )
}
