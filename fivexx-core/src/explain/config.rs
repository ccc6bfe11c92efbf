//! The engine's tunables. The user-facing ones (skew, lookahead) are
//! recorded in every capture's header (`capture::EngineSettings`); the
//! rest are constants of the build, chosen for Kubernetes defaults.

pub(crate) const SECOND: i64 = 1_000_000_000;
/// 2200-01-01T00:00:00Z: later timestamps are broken clocks.
pub(crate) const MAX_SANE_NS: i64 = 7_258_118_400 * SECOND;
/// Largest window a config may set (a day), so `t + window` cannot overflow.
pub(crate) const MAX_WINDOW_NS: i64 = 86_400 * SECOND;

/// Tunables of the engine. The defaults suit Kubernetes defaults.
#[derive(Clone, Debug)]
pub struct ExplainConfig {
    /// Tolerated clock difference between nodes and the API server.
    pub skew_ns: i64,
    /// How long after a failure to wait for facts that explain it (endpoint
    /// removal, a SIGKILL whose RSTs arrived first, ...).
    pub lookahead_ns: i64,
    /// Kernel events of one connection closer than this are joined.
    pub join_ns: i64,
    /// Allowance for proxies to apply an endpoint removal.
    pub proxy_propagation_ns: i64,
    /// Resets up to this long after a SIGKILL are caused by it.
    pub kill_window_ns: i64,
    /// SIGKILL within this of deletion + grace counts as grace expiry.
    pub grace_tolerance_ns: i64,
    /// A refusal this long after a pod started can be "not ready at start".
    pub startup_window_ns: i64,
    /// Failures this long after an OOM kill are caused by it.
    pub oom_window_ns: i64,
    /// A connect with SYN retransmits only is abandoned after this.
    pub syn_timeout_ns: i64,
    /// A proxy's 5xx is joined to its node's latest failed upstream
    /// connection at most this long before it.
    pub http_match_ns: i64,
    /// Terminations of one workload closer than this are one rollout.
    pub rollout_gap_ns: i64,
    /// Pods gone for longer than this are forgotten.
    pub prune_horizon_ns: i64,
    /// Proxy addresses whose HTTP answers are peeked from the start (the
    /// plugin asked for them). Their upstream failures that no 5xx claims
    /// count as hidden by retry even before their first 5xx.
    pub peeked_proxies: Vec<std::net::IpAddr>,
}

impl ExplainConfig {
    /// Every window within 0..=a day, so that `t + window` cannot overflow.
    pub(crate) fn clamped(self) -> ExplainConfig {
        let w = |x: i64| x.clamp(0, MAX_WINDOW_NS);
        ExplainConfig {
            skew_ns: w(self.skew_ns),
            lookahead_ns: w(self.lookahead_ns),
            join_ns: w(self.join_ns),
            proxy_propagation_ns: w(self.proxy_propagation_ns),
            kill_window_ns: w(self.kill_window_ns),
            grace_tolerance_ns: w(self.grace_tolerance_ns),
            startup_window_ns: w(self.startup_window_ns),
            oom_window_ns: w(self.oom_window_ns),
            syn_timeout_ns: w(self.syn_timeout_ns),
            http_match_ns: w(self.http_match_ns),
            rollout_gap_ns: w(self.rollout_gap_ns),
            prune_horizon_ns: w(self.prune_horizon_ns),
            peeked_proxies: self.peeked_proxies,
        }
    }

    /// The configuration a recording (or its replay) runs with: the
    /// recorded settings and peeked proxies, the build's constants for the
    /// rest.
    pub fn recorded(
        settings: crate::capture::EngineSettings,
        peeked_proxies: Vec<std::net::IpAddr>,
    ) -> ExplainConfig {
        ExplainConfig {
            skew_ns: settings.skew_ns,
            lookahead_ns: settings.lookahead_ns,
            peeked_proxies,
            ..ExplainConfig::default()
        }
    }
}

impl Default for ExplainConfig {
    fn default() -> Self {
        let recorded = crate::capture::EngineSettings::default();
        ExplainConfig {
            skew_ns: recorded.skew_ns,
            lookahead_ns: recorded.lookahead_ns,
            join_ns: SECOND,
            proxy_propagation_ns: 2 * SECOND,
            kill_window_ns: SECOND,
            grace_tolerance_ns: 2 * SECOND,
            startup_window_ns: 60 * SECOND,
            oom_window_ns: 30 * SECOND,
            syn_timeout_ns: 135 * SECOND,
            http_match_ns: SECOND,
            rollout_gap_ns: 300 * SECOND,
            prune_horizon_ns: 600 * SECOND,
            peeked_proxies: Vec::new(),
        }
    }
}
