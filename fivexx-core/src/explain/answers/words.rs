//! The proxy's own words about an answer: Envoy's response flags, and
//! HAProxy's termination state and retries, read from its access log.
//!
//! The rule: the words sharpen the kernel's account, never replace it.
//! - They narrow which failed upstream connection an answer joins: a
//!   failed connect (`UF`, `SC`, `sC`) joins a connect that never got
//!   through (refused, timed out, unreachable), a closed connection (`UC`,
//!   `UR`, `SH`, `SD`) joins an established one that was reset, a timeout
//!   (`UT`, `sH`, `sD`) joins a timed-out or unreachable one.
//! - When no failure fits the words but one of the proxy's own does not,
//!   the kernel's failure is kept (a flag is coarser than a socket's
//!   state: Envoy's `UC` also covers a connection reset by a pod that just
//!   got SIGTERM), at medium confidence at most, with a note saying so.
//! - Two words rule a join out, because they say no upstream connection
//!   failed for this request: no upstream at all (`UH`, `<NOSRV>`), which
//!   is then "no endpoints" evidence when a Service had none and never
//!   endpoint lag; and the upstream's own answer (flags `-`, state `----`),
//!   which stays unexplained (the app's own 5xx).
//! - They say how many earlier tries the request used: HAProxy's `%rc`
//!   exactly, Envoy's `URX` as its retry budget (each proxy's module in
//!   [`crate::proxylog`] reads them), and none otherwise.

use crate::explain::verdict::{FailureKind, Verdict};
use crate::proxylog::{ProxyAccount, ProxyKind, UpstreamOutcome};

/// See the module's doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Words {
    pub proxy: ProxyKind,
    pub outcome: UpstreamOutcome,
    /// The flags or termination state as logged (`URX,UF`, `SC--`).
    pub flags: String,
    /// Earlier failed tries of the request that the line accounts for
    /// (besides the last one).
    pub earlier_tries: u32,
}

impl Words {
    /// The words of a logged line; `None` for nginx (its log has none).
    pub fn of(a: &ProxyAccount) -> Option<Words> {
        let w = a.words.as_ref()?;
        Some(Words {
            proxy: a.proxy(),
            outcome: w.outcome,
            flags: w.flags.clone(),
            earlier_tries: w.earlier_tries,
        })
    }

    /// Whether a failed upstream connection of `kind` is what the words
    /// describe. None is for no upstream (`UH`, `<NOSRV>`) or the
    /// upstream's own answer: no upstream connection failed then, and
    /// since [`Words::may_disagree`] is false for them, no join is made.
    pub fn fits(&self, kind: FailureKind) -> bool {
        match self.outcome {
            UpstreamOutcome::ConnectFailed => kind.is_new_connection(),
            UpstreamOutcome::Closed => kind == FailureKind::Reset,
            UpstreamOutcome::Timeout => {
                matches!(kind, FailureKind::TimedOut | FailureKind::Unreachable)
            }
            UpstreamOutcome::Other => true,
            UpstreamOutcome::NoUpstream | UpstreamOutcome::Answered => false,
        }
    }

    /// Whether the kernel's failure is kept when none fits the words: for
    /// a failed connect or a closed connection, whose flags are coarser
    /// than a socket's state (Envoy's `UF` also covers a TLS handshake
    /// reset, `UC` a reset by a pod that just got SIGTERM); never for a
    /// timeout, which no refused or reset connection explains.
    pub fn may_disagree(&self) -> bool {
        matches!(
            self.outcome,
            UpstreamOutcome::ConnectFailed | UpstreamOutcome::Closed
        )
    }

    /// Whether the answer may be the proxy's own "no endpoints" 503: only
    /// when the proxy chose no upstream (or its words do not say).
    pub fn allows_no_endpoints(&self) -> bool {
        matches!(
            self.outcome,
            UpstreamOutcome::NoUpstream | UpstreamOutcome::Other
        )
    }

    /// Why an answer with these words stays unexplained.
    pub fn unexplained_note(&self, status: u16) -> Option<String> {
        match self.outcome {
            UpstreamOutcome::NoUpstream => Some(format!(
                "{} chose no upstream ({}): a Service without ready endpoints, but no Service in the capture was without them then",
                self.proxy.name(),
                self.flags
            )),
            UpstreamOutcome::Answered => Some(format!(
                "the upstream answered {status} itself ({}: no failure of the proxy's own): its own log says why",
                self.proxy.name()
            )),
            UpstreamOutcome::Timeout => Some(format!(
                "{} timed out waiting for the upstream ({}): a slow upstream, which the kernel does not see as a failed connection",
                self.proxy.name(),
                self.flags
            )),
            _ => None,
        }
    }

    /// The note of an answer joined to a failure its words do not
    /// describe: the kernel's account is kept.
    pub fn disagree_note(&self, kind: FailureKind) -> String {
        format!(
            "{} logged {}, but the kernel saw the upstream connection {}: the kernel's account is kept",
            self.proxy.name(),
            self.flags,
            kind.name()
        )
    }
}

/// An unexplained answer's verdict, with the proxy's words' reason when
/// they give one (no upstream, the upstream's own answer, a timeout).
pub(super) fn with_words_note(mut v: Verdict, words: Option<&Words>) -> Verdict {
    let status = v.failure.http_status().unwrap_or(0);
    if let Some(note) = words.and_then(|w| w.unexplained_note(status)) {
        v.note = Some(note);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxylog::parse_line;

    /// The words, and the proxy's words as evidence says them.
    fn words(line: &str) -> (Words, String) {
        let e = parse_line(line).unwrap();
        (Words::of(&e).unwrap(), e.words_text().unwrap())
    }

    #[test]
    fn the_words_of_real_lines() {
        let (uf, uf_text) = words(
            r#"[2026-12-02T05:51:13.634Z] "GET /x HTTP/1.1" 503 URX,UF 0 121 67 - "10.1.0.7" "ua" "id" "host" "10.244.0.12:8080""#,
        );
        assert_eq!(uf_text, "Envoy: 503 URX,UF upstream 10.244.0.12:8080");
        assert_eq!(uf.earlier_tries, crate::proxylog::envoy::URX_RETRIES);
        assert!(uf.fits(FailureKind::Refused) && uf.fits(FailureKind::TimedOut));
        assert!(!uf.fits(FailureKind::Reset));
        let (uh, uh_text) = words(
            r#"[2026-12-02T05:51:13.634Z] "GET /x HTTP/1.1" 503 UH 0 19 0 - "-" "ua" "id" "host" "-""#,
        );
        assert_eq!(uh_text, "Envoy: 503 UH no upstream host");
        assert!(!uh.fits(FailureKind::Refused) && !uh.may_disagree());
        assert!(uh.allows_no_endpoints());
        let (sc, sc_text) = words(
            r#"10.1.0.7:40772 [02/Dec/2026:05:51:38.388] http shop-web-8080/SRV_1 0/0/-1/-1/2002 503 217 - - SC-- 1/1/0/0/2 0/0 "GET /x HTTP/1.1""#,
        );
        assert_eq!(
            sc_text,
            "HAProxy: 503 SC-- server shop-web-8080/SRV_1 after 2 retries"
        );
        assert_eq!(sc.earlier_tries, 2);
        assert!(!sc.allows_no_endpoints(), "it tried a server");
        let (app, _) = words(
            r#"10.1.0.7:40814 [02/Dec/2026:05:51:40.432] http shop-web-8080/SRV_1 0/0/0/0/0 503 134 - - ---- 1/1/0/0/0 0/0 "GET /x HTTP/1.1""#,
        );
        assert!(!app.fits(FailureKind::Reset) && !app.may_disagree());
        assert!(!app.allows_no_endpoints());
        let (sh, sh_text) = words(
            r#"10.1.0.7:40740 [02/Dec/2026:05:51:38.354] http shop-web-8080/SRV_1 0/0/0/-1/0 502 209 - - SH-- 1/1/0/0/+1 0/0 "GET /x HTTP/1.1""#,
        );
        assert_eq!(
            sh_text,
            "HAProxy: 502 SH-- server shop-web-8080/SRV_1 after 1 retry, redispatched"
        );
        assert!(sh.fits(FailureKind::Reset) && !sh.fits(FailureKind::Refused));
    }
}
