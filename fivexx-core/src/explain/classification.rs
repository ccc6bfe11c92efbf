//! What a rule decides about one failure, before its episode and fix are
//! attached: shared by the pod rules (`classify`) and the Service rules
//! (`services`).

use super::verdict::{Cause, Confidence};
use crate::model::{Evidence, FactSource, Observation};

/// A Service's stretch with no ready endpoint, as the fix needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ZeroEndpoints {
    /// Pods terminating when the last endpoint left.
    pub terminating: u32,
    /// Pods not yet ready just before one was ready again.
    pub starting: u32,
    /// From the last removal to the first new ready endpoint (the API's
    /// view), when that came within the horizon.
    pub for_ns: Option<i64>,
}

/// The cause of one failure, before episode and fix are attached.
#[derive(Debug)]
pub(crate) struct Classification {
    pub cause: Cause,
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
    pub pod_uid: Option<String>,
    /// Service (namespace, name) for `NoEndpoints`.
    pub service: Option<(String, String)>,
    /// For `NoEndpoints`: how long and why.
    pub no_endpoints_why: Option<ZeroEndpoints>,
    pub note: Option<String>,
}

impl Classification {
    pub(super) fn unexplained(note: impl Into<String>, pod_uid: Option<String>) -> Classification {
        Classification {
            cause: Cause::Unexplained,
            confidence: Confidence::High,
            evidence: Vec::new(),
            pod_uid,
            service: None,
            no_endpoints_why: None,
            note: Some(note.into()),
        }
    }
}

pub(super) fn api(at_ns: i64, fact: Observation) -> Evidence {
    Evidence {
        at_ns,
        source: FactSource::Api,
        fact,
    }
}
