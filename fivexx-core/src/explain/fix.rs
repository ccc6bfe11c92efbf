//! The fix for a cause: the pods' own causes from [`super::measure`], the
//! causes outside the pods from [`super::infra_fix`].

use super::infra_fix;
use super::measure::{pod_fix, WorkloadStats};
use super::verdict::{Cause, Fix};

/// The fix for `cause` in a workload with these measurements.
pub fn fix_for(cause: Cause, st: &WorkloadStats) -> Option<Fix> {
    match cause {
        Cause::NodeLost => Some(infra_fix::node_lost(st)),
        Cause::LbDeregistrationLag => Some(infra_fix::lb_deregistration(st)),
        Cause::ProxyTerminated => Some(infra_fix::proxy_terminated(st)),
        _ => pod_fix(cause, st),
    }
}
