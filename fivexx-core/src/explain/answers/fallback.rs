//! Answers no failed upstream connection explains: a 503 while the
//! Service had no ready endpoint, and the rest, unexplained with what was
//! looked for.

use super::Context;
use crate::explain::assemble::sort_evidence;
use crate::explain::classification::Classification;
use crate::explain::services::classify_no_endpoints;
use crate::explain::verdict::{
    Cause, Confidence, Failure, HttpAnswer, Involved, ProxyRef, Verdict,
};

/// A 503 with no failed upstream connection behind it, while a Service
/// had no ready endpoint: the proxy's own "no healthy upstream".
pub(super) fn no_endpoints(v: &Verdict, cx: &mut Context, horizon: i64) -> Option<Verdict> {
    let a = v.failure.answer()?;
    let c = classify_no_endpoints(a.http_status, a.at_ns, cx.tl, cx.cfg, horizon)?;
    let (confidence, note) = (c.confidence, c.note.clone());
    Some(placed_answer(v, c, confidence, note, cx, horizon))
}

/// The verdict of answer verdict `v` under a classification made without
/// an upstream failure (a death, no endpoints): placed in its workload and
/// episode, the answer's own evidence kept, the proxy kept.
pub(super) fn placed_answer(
    v: &Verdict,
    c: Classification,
    confidence: Confidence,
    note: Option<String>,
    cx: &mut Context,
    horizon: i64,
) -> Verdict {
    let a = v.failure.answer().expect("an answer's verdict");
    let placed = cx
        .assembler
        .place(&c, a.at_ns, a.first_ns, cx.tl, cx.cfg, horizon);
    let mut evidence = c.evidence;
    evidence.extend_from_slice(&a.evidence);
    sort_evidence(&mut evidence);
    evidence.dedup();
    Verdict {
        cause: c.cause,
        confidence,
        evidence,
        involved: Involved {
            proxy: v.involved.proxy.clone(),
            ..placed.involved
        },
        episode: placed.episode,
        fix: placed.fix,
        note,
        next: None,
        burst: None,
        failure: v.failure.clone(),
    }
}

/// An answer with no failed upstream connection behind it.
pub(super) fn unanswered(
    a: HttpAnswer,
    node: &str,
    proxy: Option<ProxyRef>,
    window: i64,
) -> Verdict {
    let evidence = a.evidence.clone();
    let note = format!(
        "no failed upstream connection on {} within {} ms before this {} (the upstream's own answer, or an untraced node){}",
        if node.is_empty() { "any node" } else { node },
        window / 1_000_000,
        a.http_status,
        if a.http_status == 503 {
            "; no Service in the capture was without ready endpoints then"
        } else {
            ""
        }
    );
    Verdict {
        cause: Cause::Unexplained,
        confidence: Confidence::High,
        evidence,
        involved: Involved {
            proxy,
            ..Involved::default()
        },
        episode: None,
        fix: None,
        note: Some(note),
        next: None,
        burst: None,
        failure: Failure::Answer(a),
    }
}
