//! Errors the user can act on: one line saying what went wrong and one
//! saying what to do. Every command returns these at the binary edge so
//! that the exit is non-zero and the message is never a backtrace.

use std::fmt;

/// A failure with its cause (one line) and a hint (one line).
#[derive(Debug, thiserror::Error)]
pub struct CliError {
    pub cause: String,
    pub hint: Option<String>,
    /// Process exit code (1 for most failures, 130 after Ctrl-C).
    pub code: u8,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)
    }
}

impl CliError {
    pub fn new(cause: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            cause: one_line(&cause.into()),
            hint: Some(one_line(&hint.into())),
            code: 1,
        }
    }

    pub fn bare(cause: impl Into<String>) -> CliError {
        CliError {
            cause: one_line(&cause.into()),
            hint: None,
            code: 1,
        }
    }

    pub fn with_code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// The agent DaemonSet is missing.
    pub fn agent_not_deployed(namespace: &str) -> CliError {
        CliError::new(
            format!("the fivexx agent is not deployed (no DaemonSet fivexx-agent in namespace {namespace})"),
            "install it with `kubectl fivexx deploy` (needs cluster-admin once)",
        )
    }

    /// Ctrl-C: exit 130 as shells expect.
    pub fn interrupted(what: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError::new(what, hint).with_code(130)
    }
}

/// Messages from servers can span lines; a cause is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a failed API request was trying to do, to name it in messages.
#[derive(Clone, Debug)]
pub struct Op<'a> {
    pub verb: &'a str,
    /// Plural resource, with its subresource (`pods/portforward`).
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
}

impl Op<'_> {
    fn scope(&self) -> String {
        match self.namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None => " at cluster scope".into(),
        }
    }
}

/// Turns a kube-rs error into a cause and hint. `server` is the API
/// server's URL, named when it cannot be reached.
pub fn classify(err: &kube::Error, op: &Op<'_>, server: &str) -> CliError {
    match err {
        kube::Error::Api(status) => match status.code {
            403 => CliError::new(
                format!(
                    "forbidden: cannot {} {}{} ({})",
                    op.verb,
                    op.resource,
                    op.scope(),
                    status.message
                ),
                format!(
                    "ask your cluster admin for `{}` on `{}` (check with `kubectl auth can-i {} {}{}`)",
                    op.verb,
                    op.resource,
                    op.verb,
                    op.resource,
                    op.namespace.map(|n| format!(" -n {n}")).unwrap_or_default()
                ),
            ),
            401 => CliError::new(
                format!("unauthorized: the API server rejected the credentials ({})", status.message),
                "refresh your credentials (kubectl get pods should work with the same --context)",
            ),
            404 => CliError::new(
                format!("{} not found{}: {}", op.resource, op.scope(), status.message),
                "check the name and the namespace (-n NAMESPACE)",
            ),
            code => CliError::new(
                format!(
                    "the API server refused to {} {}{}: {} ({code})",
                    op.verb,
                    op.resource,
                    op.scope(),
                    status.message
                ),
                "retry; if it persists, check the API server's health (kubectl get --raw /readyz)",
            ),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => CliError::new(
            format!("cannot reach the cluster at {server}: {}", root_cause(err)),
            "check the context (kubectl config current-context) and that the API server is up (kubectl cluster-info)",
        ),
        kube::Error::Auth(e) => CliError::new(
            format!("cannot authenticate to {server}: {e}"),
            "check the user entry of your kubeconfig (--user) and its credential plugin",
        ),
        other => CliError::new(
            format!("{} {}{} failed: {}", op.verb, op.resource, op.scope(), root_cause(other)),
            "retry with -v to see the request",
        ),
    }
}

/// The innermost error message: for connection failures that is the one
/// that says "connection refused".
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = err;
    let mut msgs = vec![cur.to_string()];
    while let Some(next) = cur.source() {
        msgs.push(next.to_string());
        cur = next;
    }
    // The last message is usually the OS error; keep one level of context.
    let n = msgs.len();
    if n >= 2 && !msgs[n - 2].contains(&msgs[n - 1]) {
        format!("{}: {}", msgs[n - 2], msgs[n - 1])
    } else {
        msgs[n - 1].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, msg: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: msg.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn forbidden_names_verb_and_resource() {
        let op = Op {
            verb: "list",
            resource: "pods",
            namespace: Some("shop"),
        };
        let e = classify(&status(403, "pods is forbidden"), &op, "https://x");
        assert!(
            e.cause.contains("cannot list pods in namespace shop"),
            "{}",
            e.cause
        );
        assert!(e
            .hint
            .unwrap()
            .contains("kubectl auth can-i list pods -n shop"));
    }

    #[test]
    fn causes_are_one_line() {
        let e = CliError::new("a\nb", "c\n d");
        assert_eq!(e.cause, "a b");
        assert_eq!(e.hint.as_deref(), Some("c d"));
    }
}
