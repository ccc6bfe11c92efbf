//! `serve`'s sink: every event to the hub, which fans it out to the
//! clients; on each tick, the ring's ledger for their `Stats`, and the
//! HTTP peek set to the proxy pods the clients name now.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use fivexx_core::KernelEvent;

use crate::counts::KindCounts;
use crate::enrich::{Enricher, PodCgroups};
use crate::pump::Sink;
use crate::serve::Hub;
use crate::tracer::Tracer;

/// Publishes every event to the connected clients.
pub struct Publisher {
    hub: Arc<Hub>,
    /// `--http-cgroup` ids, peeked whatever the clients ask.
    static_http: BTreeSet<u64>,
    /// The proxy pods clients asked to peek at, as last applied.
    http_pods: BTreeSet<String>,
    cgroup_root: Option<PathBuf>,
    pod_cgroups: PodCgroups,
}

impl Publisher {
    /// `static_http`: the cgroup ids the peek reads whatever clients ask.
    pub fn new(hub: Arc<Hub>, static_http: BTreeSet<u64>) -> Publisher {
        Publisher {
            hub,
            static_http,
            http_pods: BTreeSet::new(),
            cgroup_root: crate::enrich::cgroup2_root(),
            pod_cgroups: PodCgroups::default(),
        }
    }

    /// Peeks at the proxy pods the clients name now, in their `Subscribe`
    /// or any later `Update` (their containers are listed again every tick:
    /// a restarted container has a new cgroup).
    fn sync_http_peek(&mut self, tracer: &mut Tracer) {
        let pods = self.hub.http_pods();
        if pods.is_empty() && self.http_pods.is_empty() {
            return;
        }
        let mut ids = self.static_http.clone();
        if let Some(root) = &self.cgroup_root {
            ids.extend(self.pod_cgroups.ids(root, &pods));
        }
        match tracer.set_http_cgroups(&ids) {
            Ok(on) if pods != self.http_pods => {
                tracing::info!(
                    "HTTP peek {} for {} proxy pod(s), {} cgroup(s)",
                    if on { "on" } else { "off" },
                    pods.len(),
                    ids.len()
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("HTTP peek: {}", crate::chain(&e)),
        }
        self.http_pods = pods;
    }
}

impl Sink for Publisher {
    type Error = crate::Error;

    fn event(&mut self, ev: KernelEvent, _: &mut Enricher) -> Result<(), crate::Error> {
        self.hub.publish(ev);
        Ok(())
    }

    fn tick(&mut self, tracer: &mut Tracer, received: KindCounts) -> Result<(), crate::Error> {
        self.sync_http_peek(tracer);
        self.hub.set_ring_counts(tracer.ring_counts(received)?);
        Ok(())
    }
}
