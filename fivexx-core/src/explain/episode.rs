//! Groups explained failures by trigger, so the report can say "drain of
//! node-2 at 10:04:12 caused 37 of 41 failures".

use super::verdict::{Cause, EpisodeKind, EpisodeRef};
use crate::model::timeline::{ClusterTimeline, PodTimeline};
use foldhash::HashMap;

#[derive(Debug, Default)]
pub(crate) struct EpisodeTracker {
    by_pod: HashMap<String, EpisodeRef>,
    /// Per workload key: the open rollout episode and its latest event.
    rollouts: HashMap<String, (EpisodeRef, i64)>,
}

impl EpisodeTracker {
    /// The episode a failure attributed to `pod` (or a Service) belongs to.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn episode_for(
        &mut self,
        cause: Cause,
        pod: Option<&PodTimeline>,
        workload_key: &str,
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
        let pod = pod?;
        if let Some(e) = self.by_pod.get(&pod.uid) {
            return Some(e.clone());
        }
        let e = if cause == Cause::OomKill {
            let at = pod.oom.as_ref().map_or(0, |o| o.0);
            EpisodeRef {
                id: format!("oom:{}@{at}", pod.uid),
                kind: EpisodeKind::Oom,
                subject: pod.display_name(),
                start_ns: at,
            }
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
                match self.rollouts.get_mut(workload_key) {
                    Some((e, last)) if (when - *last).abs() <= rollout_gap => {
                        *last = (*last).max(when);
                        e.start_ns = e.start_ns.min(when);
                        e.clone()
                    }
                    _ => {
                        let e = EpisodeRef {
                            id: format!("rollout:{workload_key}@{when}"),
                            kind: EpisodeKind::Rollout,
                            subject: workload_key.to_string(),
                            start_ns: when,
                        };
                        self.rollouts
                            .insert(workload_key.to_string(), (e.clone(), when));
                        e
                    }
                }
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

    /// Forgets pods that the timeline forgot.
    pub(crate) fn forget(&mut self, uid: &str) {
        self.by_pod.remove(uid);
    }
}
