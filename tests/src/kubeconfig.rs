//! Writes the kubeconfig that points kubectl, kube-rs and `kubectl-fivexx`
//! at the lab's fake API server: one cluster, one user with a bearer token,
//! one context named [`CONTEXT`], made current.

use std::io::Write;
use std::path::Path;

/// The context (and cluster and user) name in the lab's kubeconfig.
pub const CONTEXT: &str = "fivexx-lab";

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("cannot write kubeconfig {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server URL {0:?} must start with http:// or https://")]
    BadServer(String),
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The kubeconfig text.
pub fn render(
    server: &str,
    token: Option<&str>,
    namespace: Option<&str>,
) -> Result<String, KubeconfigError> {
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(KubeconfigError::BadServer(server.into()));
    }
    let name = quoted(CONTEXT);
    let mut text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n",
        server = quoted(server)
    );
    if let Some(ns) = namespace {
        text.push_str(&format!("    namespace: {}\n", quoted(ns)));
    }
    text.push_str(&format!(
        "current-context: {name}\nusers:\n- name: {name}\n  user:"
    ));
    match token {
        Some(t) => text.push_str(&format!("\n    token: {}\n", quoted(t))),
        None => text.push_str(" {}\n"),
    }
    text.push_str("preferences: {}\n");
    Ok(text)
}

/// Writes the kubeconfig to `path` (mode 0600, parents created).
pub fn write(
    path: &Path,
    server: &str,
    token: Option<&str>,
    namespace: Option<&str>,
) -> Result<(), KubeconfigError> {
    let text = render(server, token, namespace)?;
    let err = |source| KubeconfigError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_context_user_and_token() {
        let text = render("http://127.0.0.1:6443", Some("t0k\"en"), Some("default")).unwrap();
        assert!(text.contains("current-context: \"fivexx-lab\""));
        assert!(text.contains("server: \"http://127.0.0.1:6443\""));
        assert!(text.contains("token: \"t0k\\\"en\""));
        assert!(text.contains("namespace: \"default\""));
    }

    #[test]
    fn rejects_a_server_without_scheme() {
        assert!(render("127.0.0.1:6443", None, None).is_err());
    }
}
