//! What an agent could attach on its kernel. Shown by `fivexx-agent check`,
//! served to the plugin (`kubectl fivexx status`) and stored in capture
//! headers, so that an explanation can say which facts could not be seen.

use serde::{Deserialize, Serialize};

/// The state of one kernel hook on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    /// Attached with every field it uses.
    Attached,
    /// Attached, but some fields or behaviours are missing on this kernel.
    Degraded,
    /// Not attached: the tracepoint or a field it needs does not exist.
    Missing,
    /// The tracepoint exists but loading or attaching failed.
    Failed,
    /// Layout readable, but nothing was loaded (`check` without privileges).
    NotLoaded,
}

/// How a hook's program is attached: the BTF form (`tp_btf`, the kernel's
/// own arguments, no trace record built) or the classic tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookForm {
    TpBtf,
    Tracepoint,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookStatus {
    /// `category:name`, e.g. `tcp:tcp_send_reset`.
    pub tracepoint: String,
    pub kind: crate::KernelEventKind,
    pub state: HookState,
    /// Why it is missing, failed or degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What this kernel's version of the hook cannot tell us.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The form it is (or would be) attached in; None from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<HookForm>,
}

/// Kernel struct members found in BTF (offsets in bytes), or why not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtfOffsets {
    pub task_exit_code: Option<u32>,
    pub task_signal: Option<u32>,
    pub signal_live: Option<u32>,
    pub sock_state: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityReport {
    pub agent_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    pub kernel_release: String,
    pub tracefs: Option<String>,
    pub btf: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btf_error: Option<String>,
    pub btf_offsets: BtfOffsets,
    pub ring_buffer_bytes: u32,
    /// Whether the programs were actually loaded into the kernel for this report.
    pub loaded: bool,
    pub hooks: Vec<HookStatus>,
}

impl CapabilityReport {
    pub fn hook(&self, tracepoint: &str) -> Option<&HookStatus> {
        self.hooks.iter().find(|h| h.tracepoint == tracepoint)
    }

    /// True when every hook attached (possibly degraded).
    pub fn all_attached(&self) -> bool {
        self.hooks
            .iter()
            .all(|h| matches!(h.state, HookState::Attached | HookState::Degraded))
    }
}
