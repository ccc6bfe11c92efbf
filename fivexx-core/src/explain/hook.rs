//! A preStop hook that failed, as the kubelet reports it: a
//! `FailedPreStopHook` Event whose message names the hook and the error.
//! The kubelet then sends SIGTERM at once, so a pod whose team added
//! `preStop: exec: [sleep, "5"]` to cover the endpoint lag, and shipped a
//! distroless image with no `sleep`, gets the 502s back. The message is
//! the kubelet's own (`pkg/kubelet/lifecycle/handlers.go`):
//!
//! ```text
//! Exec lifecycle hook ([sleep 5]) for Container "web" in Pod "web-1_shop(uid)" failed - error: command 'sleep 5' exited with 126: , message: "...executable file not found in $PATH..."
//! HTTP lifecycle hook (/shutdown) for Container "web" in Pod "web-1_shop(uid)" failed - error: Get "http://10.0.0.7:8080/shutdown": dial tcp ...: connect: connection refused, message: ""
//! ```

use serde::Serialize;

/// The Event reason the kubelet records.
pub const FAILED_PRESTOP_HOOK: &str = "FailedPreStopHook";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedHook {
    /// `exec [sleep 5]`, `http /shutdown`, or the message's start.
    pub hook: String,
    /// The sleep the hook should have held SIGTERM for, when it was one.
    pub sleep_s: Option<f64>,
    /// Why it failed, in the runtime's words (shortened).
    pub error: String,
}

impl FailedHook {
    /// Reads a `FailedPreStopHook` message; any message gives a hook (the
    /// event alone says the hook failed), the details when they parse.
    pub fn parse(message: &str) -> FailedHook {
        let (kind, inner) = ["Exec", "HTTP", "Sleep"]
            .iter()
            .find_map(|k| {
                let rest = message.strip_prefix(&format!("{k} lifecycle hook ("))?;
                // The hook is up to the ")" before " for Container".
                let end = rest.find(") for Container").or_else(|| rest.find(')'))?;
                Some((k.to_ascii_lowercase(), rest[..end].to_string()))
            })
            .unwrap_or_else(|| ("hook".into(), String::new()));
        let hook = if inner.is_empty() {
            message.chars().take(80).collect()
        } else {
            format!("{kind} {inner}")
        };
        FailedHook {
            sleep_s: sleep_seconds(&inner),
            error: error_of(message),
            hook,
        }
    }
}

/// `[sleep 5]`, `[/bin/sleep 2.5]`, `[sh -c sleep 10]`: the seconds.
fn sleep_seconds(cmd: &str) -> Option<f64> {
    let words: Vec<&str> = cmd
        .trim_matches(|c| c == '[' || c == ']')
        .split_whitespace()
        .collect();
    let at = words
        .iter()
        .position(|w| *w == "sleep" || w.ends_with("/sleep"))?;
    let n = words.get(at + 1)?.trim_end_matches('s');
    n.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)
}

/// The reason, preferring the runtime's own words for the common cases.
fn error_of(message: &str) -> String {
    const KNOWN: [&str; 4] = [
        "executable file not found in $PATH",
        "no such file or directory",
        "connection refused",
        "permission denied",
    ];
    if let Some(k) = KNOWN.iter().find(|k| message.contains(*k)) {
        return (*k).to_string();
    }
    let after = message
        .split_once("failed - error: ")
        .map_or(message, |(_, e)| e);
    let cut = after.split(", message:").next().unwrap_or(after);
    cut.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubelets_exec_message() {
        let m = r#"Exec lifecycle hook ([sleep 5]) for Container "web" in Pod "web-1_shop(0a1b)" failed - error: command 'sleep 5' exited with 126: , message: "OCI runtime exec failed: exec failed: unable to start container process: exec: \"sleep\": executable file not found in $PATH: unknown\r\n""#;
        let h = FailedHook::parse(m);
        assert_eq!(h.hook, "exec [sleep 5]");
        assert_eq!(h.sleep_s, Some(5.0));
        assert_eq!(h.error, "executable file not found in $PATH");
    }

    #[test]
    fn reads_an_http_hook_and_odd_messages() {
        let m = r#"HTTP lifecycle hook (/drain) for Container "web" in Pod "web-1_shop(0a1b)" failed - error: Get "http://10.0.0.7:8080/drain": context deadline exceeded, message: """#;
        let h = FailedHook::parse(m);
        assert_eq!(h.hook, "http /drain");
        assert_eq!(h.sleep_s, None);
        assert!(h.error.contains("context deadline exceeded"), "{h:?}");
        let h = FailedHook::parse("something else entirely");
        assert_eq!(h.hook, "something else entirely");
        assert_eq!(
            FailedHook::parse("Exec lifecycle hook ([/bin/sleep 2.5s]) for Container").sleep_s,
            Some(2.5)
        );
    }
}
