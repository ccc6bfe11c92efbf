//! Groups explained failures by trigger, so the report can say "drain of
//! node-2 at 10:04:12 caused 37 of 41 failures".

use super::verdict::{Cause, EpisodeKind, EpisodeRef};
use crate::model::timeline::{ClusterTimeline, PodTimeline};
use foldhash::HashMap;

#[derive(Debug, Default)]
pub(crate) struct EpisodeTracker {
    by_pod: HashMap<String, EpisodeRef>,
    /// Per kind (rollout, OOM kills) and workload key: the open episode
    /// and its latest event.
    grouped: HashMap<(EpisodeKind, Option<String>), (EpisodeRef, i64)>,
}

impl EpisodeTracker {
    /// The episode a failure attributed to `pod` (or a Service) belongs to.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn episode_for(
        &mut self,
        cause: Cause,
        pod: Option<&PodTimeline>,
        workload_key: Option<&str>,
        at_ns: i64,
        service: Option<&(String, String)>,
        service_since: i64,
        tl: &ClusterTimeline,
        skew: i64,
        rollout_gap: i64,
    ) -> Option<EpisodeRef> {
        if cause == Cause::Unexplained {
            return None;
        }
        if cause == Cause::NoEndpoints {
            let subject = service.map_or("?".to_string(), |(ns, n)| format!("{ns}/service/{n}"));
            return Some(EpisodeRef {
                id: format!("no_endpoints:{subject}@{service_since}"),
                kind: EpisodeKind::NoEndpoints,
                subject,
                start_ns: service_since,
            });
        }
        if cause == Cause::KeepAliveIdleTimeout {
            return Some(self.grouped(EpisodeKind::IdleTimeout, workload_key, at_ns, rollout_gap));
        }
        let pod = pod?;
        if cause == Cause::NodeLost {
            let node = pod.node.clone().unwrap_or_default();
            let since = tl.node_quiet_since(&node).unwrap_or(at_ns);
            return Some(EpisodeRef {
                id: format!("node_lost:{node}@{since}"),
                kind: EpisodeKind::NodeLost,
                subject: node,
                start_ns: since,
            });
        }
        if let Some(e) = self.by_pod.get(&pod.uid) {
            return Some(e.clone());
        }
        let e = if cause == Cause::OomKill {
            let at = pod.oom.as_ref().map_or(0, |o| o.0);
            // One workload's OOM kills close together are one episode, as
            // its terminations are one rollout.
            self.grouped(EpisodeKind::Oom, workload_key, at, rollout_gap)
        } else {
            let (when, starting) = match pod.termination_ns() {
                Some(t) if cause != Cause::NotReadyAtStart => (t, false),
                _ => (
                    [pod.started_ns, pod.created_ns, pod.first_ready_ns()]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(0),
                    true,
                ),
            };
            let cordon = if starting {
                None
            } else {
                pod.node
                    .as_deref()
                    .and_then(|n| tl.cordoned_at(n, when, skew).map(|c| (n, c)))
            };
            if let Some((node, since)) = cordon {
                EpisodeRef {
                    id: format!("drain:{node}@{since}"),
                    kind: EpisodeKind::Drain,
                    subject: node.to_string(),
                    start_ns: since,
                }
            } else if pod.workload.is_some() {
                self.grouped(EpisodeKind::Rollout, workload_key, when, rollout_gap)
            } else {
                EpisodeRef {
                    id: format!(
                        "{}:{}@{when}",
                        if starting { "startup" } else { "termination" },
                        pod.uid
                    ),
                    kind: if starting {
                        EpisodeKind::Startup
                    } else {
                        EpisodeKind::Termination
                    },
                    subject: pod.display_name(),
                    start_ns: when,
                }
            }
        };
        self.by_pod.insert(pod.uid.clone(), e.clone());
        Some(e)
    }

    /// The open episode of `kind` for a workload, if its latest event is
    /// within `gap` of `when`; else a new one.
    fn grouped(
        &mut self,
        kind: EpisodeKind,
        workload_key: Option<&str>,
        when: i64,
        gap: i64,
    ) -> EpisodeRef {
        let key = (kind, workload_key.map(str::to_string));
        match self.grouped.get_mut(&key) {
            Some((e, last)) if (when - *last).abs() <= gap => {
                *last = (*last).max(when);
                e.start_ns = e.start_ns.min(when);
                e.clone()
            }
            _ => {
                let prefix = match kind {
                    EpisodeKind::Oom => "oom",
                    EpisodeKind::IdleTimeout => "idle",
                    _ => "rollout",
                };
                // Pods the API never named share one group.
                let subject = workload_key.unwrap_or("unnamed pods");
                let e = EpisodeRef {
                    id: format!("{prefix}:{subject}@{when}"),
                    kind,
                    subject: subject.to_string(),
                    start_ns: when,
                };
                self.grouped.insert(key, (e.clone(), when));
                e
            }
        }
    }

    /// Forgets pods that the timeline forgot.
    pub(crate) fn forget(&mut self, uid: &str) {
        self.by_pod.remove(uid);
    }
}
