//! Errors the user can act on: one line saying what went wrong and one
//! saying what to do. Every command returns these to the binary's edge
//! ([`crate::run`]) so that the exit is non-zero and the message is never
//! a backtrace.

use std::error::Error;
use std::fmt;

/// What went wrong underneath (an I/O, API or capture error), kept whole
/// rather than flattened into the cause: `-v` logs and callers can still
/// look at it, and the printed line quotes it once.
pub type Source = Box<dyn Error + Send + Sync + 'static>;

/// A failure with its cause (one line) and a hint (one line).
#[derive(Debug, thiserror::Error)]
pub struct CliError {
    pub cause: String,
    pub hint: Option<String>,
    /// Process exit code (1 for most failures, 130 after Ctrl-C).
    pub code: u8,
    #[source]
    source: Option<Source>,
}

/// The whole line, the sources' words included: a `CliError` is printed
/// at the edge but also quoted inside other messages (why an agent's
/// stream was lost), which should not lose the underlying error.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

impl CliError {
    pub fn new(cause: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            cause: one_line(&cause.into()),
            hint: Some(one_line(&hint.into())),
            code: 1,
            source: None,
        }
    }

    pub fn bare(cause: impl Into<String>) -> CliError {
        CliError {
            cause: one_line(&cause.into()),
            hint: None,
            code: 1,
            source: None,
        }
    }

    pub fn with_code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// Keeps the error underneath; the printed line adds what it says
    /// that the cause does not (see [`CliError::line`]).
    pub fn with_source(mut self, source: impl Into<Source>) -> CliError {
        self.source = Some(source.into());
        self
    }

    /// The one printed line: the cause, then the source chain joined with
    /// ": ", less what the cause already says. A cause that quotes one of
    /// the chain's messages (the API client's failures are worded with
    /// their root cause) has said it and every wrapper around it; of the
    /// rest, a message the line already holds is skipped, so a wrapper's
    /// `"I/O error: {0}"` and its own source are not said twice.
    pub fn line(&self) -> String {
        let mut line = self.cause.clone();
        let Some(source) = self.source.as_deref() else {
            return line;
        };
        let mut chain = Vec::new();
        let mut cur: Option<&(dyn Error + 'static)> = Some(source);
        while let Some(e) = cur {
            chain.push(one_line(&e.to_string()));
            cur = e.source();
        }
        chain.retain(|m| !m.is_empty());
        let told = chain
            .iter()
            .rposition(|m| line.contains(m.as_str()))
            .map_or(0, |k| k + 1);
        for msg in &chain[told..] {
            if line.contains(msg.as_str()) {
                continue;
            }
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(msg);
        }
        line
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

/// A failed API request as the user reads it, the kube-rs error kept as
/// its source. A refusal (403, 404, ...) is the server's answer, whose
/// message the cause quotes: kube-rs's rendering of it is a debug dump
/// (`ApiError: ... (Status { ... })`), so it is not chained.
pub fn from_kube(err: kube::Error, op: &Op<'_>, server: &str) -> CliError {
    let e = classify(&err, op, server);
    match err {
        kube::Error::Api(_) => e,
        other => e.with_source(other),
    }
}

/// Turns a kube-rs error into a cause and hint. `server` is the API
/// server's URL, named when it cannot be reached. The cause quotes the
/// root cause itself, for callers that only borrow the error (a watch's).
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
    fn the_line_adds_what_the_sources_say_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = CliError::bare("cannot open x.fxc").with_source(io());
        assert_eq!(e.to_string(), "cannot open x.fxc: no such file");
        // A wrapper that repeats its source says it once.
        #[derive(Debug, thiserror::Error)]
        #[error("I/O error: {0}")]
        struct Wrap(#[source] std::io::Error);
        let e = CliError::bare("writing x.fxc").with_source(Wrap(io()));
        assert_eq!(e.to_string(), "writing x.fxc: I/O error: no such file");
        // A cause that quotes the root cause has said it all.
        let e = CliError::bare("cannot reach the cluster: no such file").with_source(Wrap(io()));
        assert_eq!(e.to_string(), "cannot reach the cluster: no such file");
        assert!(std::error::Error::source(&e).is_some());
        // A clause added after the line (deploy's rollback) stays last.
        let mut e = CliError::bare("writing x.fxc").with_source(Wrap(io()));
        e.cause = format!("{}; rolled back", e.line());
        assert_eq!(
            e.to_string(),
            "writing x.fxc: I/O error: no such file; rolled back"
        );
    }

    #[test]
    fn causes_are_one_line() {
        let e = CliError::new("a\nb", "c\n d");
        assert_eq!(e.cause, "a b");
        assert_eq!(e.hint.as_deref(), Some("c d"));
    }
}
