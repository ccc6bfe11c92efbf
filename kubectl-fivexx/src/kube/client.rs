//! Connecting to the cluster the way kubectl does: kubeconfig from
//! `--kubeconfig`, `$KUBECONFIG` or `~/.kube/config` (in-cluster as a last
//! resort), `--context/--cluster/--user` overrides, the context's namespace
//! unless `-n` is given. Every API call goes through [`KubeClient::call`] so
//! that failures name the verb and resource.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::duration::FlagDuration;
use crate::error::{from_kube, CliError, Op};

/// The kubectl connection flags every cluster command takes.
#[derive(Args, Debug, Clone)]
pub struct KubeFlags {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Namespace of the target (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// How long to wait for a single API request (e.g. 10s, 1m; 0: no limit).
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s")]
    pub request_timeout: FlagDuration,
}

/// A connected client and what kubectl would show about it.
#[derive(Clone)]
pub struct KubeClient {
    pub kube: kube::Client,
    /// The namespace commands default to.
    pub namespace: String,
    /// Context name (or `in-cluster`), recorded in captures.
    pub context: String,
    pub server: String,
    timeout: Option<Duration>,
}

impl KubeClient {
    /// Builds the client. No request is sent yet: an unreachable client
    /// shows up on the first [`KubeClient::call`].
    pub async fn connect(flags: &KubeFlags) -> Result<KubeClient, CliError> {
        let timeout = (!flags.request_timeout.0.is_zero()).then_some(flags.request_timeout.0);
        let explicit = flags.kubeconfig.is_some() || std::env::var_os("KUBECONFIG").is_some();
        let kubeconfig = match &flags.kubeconfig {
            Some(p) => Kubeconfig::read_from(p).map(Some),
            None => match Kubeconfig::read() {
                Ok(k) => Ok(Some(k)),
                // No file at all: fall back to in-client, as kubectl does.
                Err(_) if !explicit && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        }
        .map_err(|e| kubeconfig_error(e, flags))?;
        let (mut config, context) = match kubeconfig {
            Some(kc) => {
                let context = flags
                    .context
                    .clone()
                    .or_else(|| kc.current_context.clone())
                    .unwrap_or_default();
                if let Some(want) = &flags.context {
                    if !kc.contexts.iter().any(|c| &c.name == want) {
                        let known: Vec<&str> =
                            kc.contexts.iter().map(|c| c.name.as_str()).collect();
                        return Err(CliError::new(
                            format!(
                                "context \"{want}\" not found in the kubeconfig (known: {})",
                                known.join(", ")
                            ),
                            "list contexts with `kubectl config get-contexts`",
                        ));
                    }
                }
                let opts = KubeConfigOptions {
                    context: flags.context.clone(),
                    cluster: flags.cluster.clone(),
                    user: flags.user.clone(),
                };
                let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| kubeconfig_error(e, flags))?;
                (cfg, context)
            }
            None => (
                kube::Config::incluster().map_err(|e| {
                    CliError::new(
                        "no kubeconfig and the in-cluster configuration failed",
                        "pass --kubeconfig FILE or set KUBECONFIG",
                    )
                    .with_source(e)
                })?,
                "in-cluster".to_string(),
            ),
        };
        if let Some(t) = timeout {
            config.connect_timeout = Some(t);
        }
        let server = config.cluster_url.to_string();
        let namespace = flags
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| {
            CliError::new(
                format!("cannot build a client for {server}"),
                "check the cluster's certificate-authority and the user's credentials in the kubeconfig",
            )
            .with_source(e)
        })?;
        Ok(KubeClient {
            kube: client,
            namespace,
            context,
            server,
            timeout,
        })
    }

    /// Runs one request, bounded by `--request-timeout`, and turns its
    /// failure into a message naming `verb` and `resource`.
    pub async fn call<T>(
        &self,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<T, CliError> {
        let op = Op {
            verb,
            resource,
            namespace,
        };
        let res = match self.timeout {
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(CliError::new(
                        format!(
                            "cannot reach the cluster at {}: no answer to {verb} {resource} within {t:?}",
                            self.server
                        ),
                        "check that the API server is up (kubectl cluster-info), or raise --request-timeout",
                    ))
                }
            },
            None => fut.await,
        };
        res.map_err(|e| from_kube(e, &op, &self.server))
    }

    /// Like [`KubeClient::call`], but a 404 is `Ok(None)`.
    pub async fn get_opt<T>(
        &self,
        resource: &str,
        namespace: Option<&str>,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<Option<T>, CliError> {
        match self
            .call("get", resource, namespace, async {
                match fut.await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    other => other.map(Some),
                }
            })
            .await
        {
            Ok(v) => Ok(v),
            Err(e) => Err(e),
        }
    }
}

fn kubeconfig_error(e: KubeconfigError, flags: &KubeFlags) -> CliError {
    match e {
        KubeconfigError::LoadContext(name) | KubeconfigError::LoadClusterOfContext(name) => {
            CliError::new(
                format!("context \"{name}\" not found in the kubeconfig"),
                "list contexts with `kubectl config get-contexts`",
            )
        }
        KubeconfigError::CurrentContextNotSet => CliError::new(
            "the kubeconfig has no current context",
            "pass --context NAME or run `kubectl config use-context NAME`",
        ),
        KubeconfigError::FindPath => CliError::new(
            "no kubeconfig found ($KUBECONFIG unset and no ~/.kube/config)",
            "pass --kubeconfig FILE or set KUBECONFIG",
        ),
        KubeconfigError::ReadConfig(io, path) => CliError::new(
            format!("cannot read kubeconfig {}", path.display()),
            if flags.kubeconfig.is_some() {
                "check the --kubeconfig path"
            } else {
                "check $KUBECONFIG, or pass --kubeconfig FILE"
            },
        )
        .with_source(io),
        other => CliError::new("unusable kubeconfig", "check it with `kubectl config view`")
            .with_source(other),
    }
}
