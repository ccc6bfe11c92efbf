//! What a rule decides about one failure, before its episode and fix are
//! attached: shared by the pod rules (`classify`) and the Service rules
//! (`services`).

use super::verdict::{Cause, Confidence};
use crate::model::{Evidence, FactSource, Observation};

/// The cause of one failure, before episode and fix are attached.
#[derive(Debug)]
pub(crate) struct Classification {
    pub cause: Cause,
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
    pub pod_uid: Option<String>,
    /// Service (namespace, name) for `NoEndpoints`.
    pub service: Option<(String, String)>,
    /// For `NoEndpoints`: pods terminating when the last endpoint left,
    /// and pods not yet ready when one came back (the reason, for the fix).
    pub no_endpoints_why: Option<(u32, u32)>,
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
