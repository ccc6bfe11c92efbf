//! `kubectl fivexx deploy` and `undeploy`.
//!
//! Deploy server-side applies the embedded manifests (field manager
//! `kubectl-fivexx`), remembering which objects did not exist before, so
//! that Ctrl-C or a failure removes exactly those and nothing is left
//! half-created. Undeploy deletes by the managed-by label, and a namespace
//! only when that label says deploy created it.

use std::fmt::Debug;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::agent;
use crate::cmd::status;
use crate::duration::FlagDuration;
use crate::error::CliError;
use crate::kube::{KubeClient, KubeFlags};
use crate::manifests::{
    capabilities_for_kernel, parse_node_selector, Manifests, RenderOptions, AGENT_NAME,
    AGENT_NAMESPACE, FIELD_MANAGER, MANAGED_BY,
};
use crate::style::Painter;

pub const EXAMPLES: &str = "Examples:
  # install the agent on every node and wait until it is ready
  kubectl fivexx deploy
  # a pinned image, only on some nodes
  kubectl fivexx deploy --image registry.example/fivexx-agent@sha256:... --node-selector pool=web
  # print the manifests instead of applying them
  kubectl fivexx deploy --dry-run -o yaml";

pub const UNDEPLOY_EXAMPLES: &str = "Examples:
  kubectl fivexx undeploy
  kubectl fivexx undeploy --context staging";

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The agent image (default: the release matching this plugin).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Only nodes with these labels (KEY=VALUE[,KEY=VALUE]).
    #[arg(long, value_name = "SELECTOR")]
    pub node_selector: Option<String>,
    /// Print the manifests (with -o yaml or json) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format for --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: ManifestFormat,
    /// How long to wait for the agents to become ready.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: FlagDuration,
    /// Apply and return at once, without waiting for readiness.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args, Debug)]
pub struct UndeployArgs {
    /// How long to wait for the API server to confirm the deletions.
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub timeout: FlagDuration,
}

/// `-o` of `deploy --dry-run`: the manifests as kubectl would print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    Yaml,
    Json,
}

/// An object this deploy created (it did not exist before), to remove on
/// Ctrl-C or failure.
#[derive(Debug, Clone)]
enum Created {
    Namespace(String),
    ServiceAccount,
    ClusterRole,
    ClusterRoleBinding,
    DaemonSet,
}

pub async fn run(kube: KubeFlags, args: DeployArgs) -> Result<ExitCode, CliError> {
    let mut opts = RenderOptions {
        image: args.image.clone(),
        ..Default::default()
    };
    if let Some(sel) = &args.node_selector {
        opts.node_selector = parse_node_selector(sel)
            .map_err(|e| CliError::new(e.to_string(), "for example: --node-selector pool=web"))?;
    }
    let timeout = args.timeout.0;
    if args.dry_run {
        let m = render(&opts)?;
        print!(
            "{}",
            if args.output == ManifestFormat::Json {
                m.to_json()
            } else {
                m.to_yaml()
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let client = KubeClient::connect(&kube).await?;
    // Older kernels need more capabilities: ask the nodes, not the user.
    let nodes: Api<Node> = Api::all(client.kube.clone());
    let node_list = client
        .call("list", "nodes", None, nodes.list(&ListParams::default()))
        .await?;
    for node in &node_list.items {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        if !opts
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            continue;
        }
        let kernel = node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kernel_version.clone())
            .unwrap_or_default();
        for cap in capabilities_for_kernel(&kernel) {
            if !kernel.is_empty() && !opts.extra_capabilities.iter().any(|c| c == cap) {
                eprintln!(
                    "note: node {} runs kernel {kernel}: adding CAP_{cap} for the agent",
                    node.metadata.name.as_deref().unwrap_or("?")
                );
                opts.extra_capabilities.push(cap.to_string());
            }
        }
    }
    let manifests = render(&opts)?;
    let mut created = Vec::new();
    let outcome = tokio::select! {
        r = apply_and_wait(&client, &manifests, &args, timeout, &mut created) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::interrupted(
            "interrupted during deploy",
            "run `kubectl fivexx deploy` again to install the agent",
        )),
    };
    match outcome {
        Ok(code) => Ok(code),
        Err(e) => {
            let removed = rollback(&client, &created).await;
            let mut e = e;
            // After the whole line, sources included: the rollback is
            // said last, once the failure is.
            e.cause = format!(
                "{}; removed the {removed} object(s) this deploy had created, nothing is left half-created",
                e.line()
            );
            Err(e)
        }
    }
}

/// The embedded manifests are part of the build: one that does not parse
/// is a bug, said as such rather than as a user's mistake.
fn render(opts: &RenderOptions) -> Result<Manifests, CliError> {
    Manifests::render(opts)
        .map_err(|e| CliError::bare("cannot render the agent's manifests").with_source(e))
}

async fn apply_and_wait(
    client: &KubeClient,
    m: &Manifests,
    args: &DeployArgs,
    timeout: Duration,
    created: &mut Vec<Created>,
) -> Result<ExitCode, CliError> {
    let c = &client.kube;
    // The namespace: ours to apply (and later delete) only if it does not
    // exist or an earlier deploy created it.
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let existing = client
        .get_opt("namespaces", None, namespaces.get(AGENT_NAMESPACE))
        .await?;
    let ours = existing.as_ref().is_none_or(is_managed);
    if ours {
        apply(client, &namespaces, "namespaces", None, &m.namespace).await?;
        if existing.is_none() {
            created.push(Created::Namespace(AGENT_NAMESPACE.into()));
        }
        println!(
            "namespace/{AGENT_NAMESPACE} {}",
            if existing.is_none() {
                "created"
            } else {
                "configured"
            }
        );
    } else {
        println!("namespace/{AGENT_NAMESPACE} exists (not created by kubectl fivexx: left as is)");
    }
    let ns = Some(AGENT_NAMESPACE);
    let sa: Api<ServiceAccount> = Api::namespaced(c.clone(), AGENT_NAMESPACE);
    if apply(client, &sa, "serviceaccounts", ns, &m.service_account).await? {
        created.push(Created::ServiceAccount);
    }
    println!("serviceaccount/{AGENT_NAME} applied");
    let cr: Api<ClusterRole> = Api::all(c.clone());
    if apply(client, &cr, "clusterroles", None, &m.cluster_role).await? {
        created.push(Created::ClusterRole);
    }
    println!("clusterrole.rbac.authorization.k8s.io/{AGENT_NAME} applied");
    let crb: Api<ClusterRoleBinding> = Api::all(c.clone());
    if apply(
        client,
        &crb,
        "clusterrolebindings",
        None,
        &m.cluster_role_binding,
    )
    .await?
    {
        created.push(Created::ClusterRoleBinding);
    }
    println!("clusterrolebinding.rbac.authorization.k8s.io/{AGENT_NAME} applied");
    let ds: Api<DaemonSet> = Api::namespaced(c.clone(), AGENT_NAMESPACE);
    if apply(client, &ds, "daemonsets", ns, &m.daemon_set).await? {
        created.push(Created::DaemonSet);
    }
    println!("daemonset.apps/{AGENT_NAME} applied");
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_ready(client, &ds, timeout).await?;
    // Deployed: from here on, Ctrl-C no longer undoes anything.
    created.clear();
    let agents = agent::agent_pods(client).await?;
    let statuses = status::probe_all(client, &agents).await;
    println!();
    print!(
        "{}",
        status::render_table(&statuses, true, Painter::stdout())
    );
    if let Some(s) = statuses.iter().find(|s| s.compatible == Some(false)) {
        return Err(agent::skew_error(
            &s.node,
            s.agent_version.as_deref().unwrap_or("?"),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn is_managed<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// Server-side applies one object; true when it did not exist before.
async fn apply<K>(
    client: &KubeClient,
    api: &Api<K>,
    resource: &str,
    ns: Option<&str>,
    obj: &K,
) -> Result<bool, CliError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let before = client.get_opt(resource, ns, api.get(&name)).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    client
        .call(
            "patch",
            resource,
            ns,
            api.patch(&name, &params, &Patch::Apply(obj)),
        )
        .await?;
    Ok(before.is_none())
}

/// Polls the DaemonSet's status with a progress line until every
/// scheduled agent is ready.
async fn wait_ready(
    client: &KubeClient,
    ds: &Api<DaemonSet>,
    timeout: Duration,
) -> Result<(), CliError> {
    let bar = indicatif::ProgressBar::new_spinner();
    if !crate::style::stderr_colour() && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let d = client
            .call(
                "get",
                "daemonsets",
                Some(AGENT_NAMESPACE),
                ds.get(AGENT_NAME),
            )
            .await?;
        let st = d.status.unwrap_or_default();
        let line = format!(
            "agents ready {}/{}",
            st.number_ready, st.desired_number_scheduled
        );
        bar.set_message(line.clone());
        if line != last {
            // Also as plain lines: logs and pipes see the progress too.
            if bar.is_hidden() {
                eprintln!("{line}");
            }
            last = line;
        }
        if st.desired_number_scheduled > 0 && st.number_ready >= st.desired_number_scheduled {
            bar.finish_and_clear();
            eprintln!("{last}");
            return Ok(());
        }
        if start.elapsed() > timeout {
            bar.finish_and_clear();
            return Err(CliError::new(
                format!("the agents did not become ready within {timeout:?} ({last})"),
                "check `kubectl -n fivexx-system get pods` and `kubectl -n fivexx-system describe daemonset fivexx-agent`",
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes what this deploy created, newest first. Returns how many.
async fn rollback(client: &KubeClient, created: &[Created]) -> usize {
    let c = &client.kube;
    let dp = DeleteParams::foreground();
    let mut n = 0;
    for obj in created.iter().rev() {
        let r = match obj {
            Created::DaemonSet => Api::<DaemonSet>::namespaced(c.clone(), AGENT_NAMESPACE)
                .delete(AGENT_NAME, &dp)
                .await
                .map(|_| ()),
            Created::ClusterRoleBinding => Api::<ClusterRoleBinding>::all(c.clone())
                .delete(AGENT_NAME, &dp)
                .await
                .map(|_| ()),
            Created::ClusterRole => Api::<ClusterRole>::all(c.clone())
                .delete(AGENT_NAME, &dp)
                .await
                .map(|_| ()),
            Created::ServiceAccount => {
                Api::<ServiceAccount>::namespaced(c.clone(), AGENT_NAMESPACE)
                    .delete(AGENT_NAME, &dp)
                    .await
                    .map(|_| ())
            }
            Created::Namespace(name) => Api::<Namespace>::all(c.clone())
                .delete(name, &dp)
                .await
                .map(|_| ()),
        };
        match r {
            Ok(()) => n += 1,
            Err(e) => eprintln!("warning: could not remove {obj:?}: {e}"),
        }
    }
    n
}

pub async fn undeploy(kube: KubeFlags, args: UndeployArgs) -> Result<ExitCode, CliError> {
    let timeout = args.timeout.0;
    let client = KubeClient::connect(&kube).await?;
    let c = &client.kube;
    let sel = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let mut removed = 0usize;
    let ns = Some(AGENT_NAMESPACE);
    removed += delete_labelled(
        &client,
        Api::<DaemonSet>::namespaced(c.clone(), AGENT_NAMESPACE),
        "daemonsets",
        "daemonset.apps",
        ns,
        &sel,
    )
    .await?;
    removed += delete_labelled(
        &client,
        Api::<ServiceAccount>::namespaced(c.clone(), AGENT_NAMESPACE),
        "serviceaccounts",
        "serviceaccount",
        ns,
        &sel,
    )
    .await?;
    removed += delete_labelled(
        &client,
        Api::<ClusterRoleBinding>::all(c.clone()),
        "clusterrolebindings",
        "clusterrolebinding.rbac.authorization.k8s.io",
        None,
        &sel,
    )
    .await?;
    removed += delete_labelled(
        &client,
        Api::<ClusterRole>::all(c.clone()),
        "clusterroles",
        "clusterrole.rbac.authorization.k8s.io",
        None,
        &sel,
    )
    .await?;
    // Only namespaces carrying our label: deploy created them.
    let namespaces = Api::<Namespace>::all(c.clone());
    let ours = client
        .call("list", "namespaces", None, namespaces.list(&sel))
        .await?;
    for n in ours.items {
        let name = n.metadata.name.unwrap_or_default();
        if name != AGENT_NAMESPACE {
            continue;
        }
        client
            .call(
                "delete",
                "namespaces",
                None,
                namespaces.delete(&name, &DeleteParams::default()),
            )
            .await?;
        println!("namespace/{name} deleted");
        removed += 1;
    }
    // Wait until the API confirms the DaemonSet is gone (its pods follow).
    let ds = Api::<DaemonSet>::namespaced(c.clone(), AGENT_NAMESPACE);
    let start = Instant::now();
    while client
        .get_opt("daemonsets", ns, ds.get(AGENT_NAME))
        .await?
        .is_some()
    {
        if start.elapsed() > timeout {
            return Err(CliError::new(
                "the agent DaemonSet is still there after undeploy",
                "check finalizers: kubectl -n fivexx-system get daemonset fivexx-agent -o yaml",
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if removed == 0 {
        println!(
            "nothing to remove: no objects labelled {}={}",
            MANAGED_BY.0, MANAGED_BY.1
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn delete_labelled<K>(
    client: &KubeClient,
    api: Api<K>,
    resource: &str,
    shown: &str,
    ns: Option<&str>,
    sel: &ListParams,
) -> Result<usize, CliError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let list = client.call("list", resource, ns, api.list(sel)).await?;
    let mut n = 0;
    for obj in list.items {
        let name = obj.meta().name.clone().unwrap_or_default();
        let r = client
            .call("delete", resource, ns, async {
                match api.delete(&name, &DeleteParams::background()).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await;
        r?;
        println!("{shown}/{name} deleted");
        n += 1;
    }
    Ok(n)
}
