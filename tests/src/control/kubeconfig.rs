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

/// Standard base64 (RFC 4648, padded), for `certificate-authority-data`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Everything a lab kubeconfig says.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeconfigSpec<'a> {
    /// `http://…` or `https://…`.
    pub server: &'a str,
    /// Bearer token of the user.
    pub token: Option<&'a str>,
    /// The context's default namespace.
    pub namespace: Option<&'a str>,
    /// PEM of the CA that signed an https server's certificate.
    pub ca_pem: Option<&'a str>,
}

/// The kubeconfig text.
pub fn render(
    server: &str,
    token: Option<&str>,
    namespace: Option<&str>,
) -> Result<String, KubeconfigError> {
    render_spec(&KubeconfigSpec {
        server,
        token,
        namespace,
        ca_pem: None,
    })
}

/// The kubeconfig text for a full spec.
pub fn render_spec(spec: &KubeconfigSpec<'_>) -> Result<String, KubeconfigError> {
    let KubeconfigSpec {
        server,
        token,
        namespace,
        ca_pem,
    } = *spec;
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(KubeconfigError::BadServer(server.into()));
    }
    let name = quoted(CONTEXT);
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64(pem.as_bytes())
            )
        })
        .unwrap_or_default();
    let mut text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n{ca}contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n",
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
    write_spec(
        path,
        &KubeconfigSpec {
            server,
            token,
            namespace,
            ca_pem: None,
        },
    )
}

/// Writes the kubeconfig for a full spec to `path` (mode 0600, parents
/// created).
pub fn write_spec(path: &Path, spec: &KubeconfigSpec<'_>) -> Result<(), KubeconfigError> {
    let text = render_spec(spec)?;
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
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn rejects_a_server_without_scheme() {
        assert!(render("127.0.0.1:6443", None, None).is_err());
    }
}
