//! The fake control plane against real clients: kube-rs 5 (list, watch,
//! watcher, server-side apply, delete, errors, port-forward) and the real
//! `kubectl` binary.
//!
//! Longer than the lab's ~600-line guide on purpose: it is one test binary
//! (each file under tests/ links the lab, kube-rs and axum again, ~20 s of
//! build apiece), and its tests share the one `Lab` fixture at the top.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use fivexx_lab::control::apiserver::{ApiServer, ApiServerConfig};
use fivexx_lab::control::store::ClusterStore;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodStatus};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE: &str = "lab-node";
const WAIT: Duration = Duration::from_secs(10);

/// A store, a server on it, a kubeconfig and a kube-rs client.
struct Lab {
    store: ClusterStore,
    server: ApiServer,
    kubeconfig: PathBuf,
    client: kube::Client,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("fivexx-apiserver-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn client_for(path: &std::path::Path) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let options = KubeConfigOptions {
        context: Some(fivexx_lab::control::kubeconfig::CONTEXT.into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn lab(tag: &str, store: ClusterStore) -> Result<Lab> {
    lab_with(tag, store, ApiServerConfig::default()).await
}

async fn lab_with(tag: &str, store: ClusterStore, config: ApiServerConfig) -> Result<Lab> {
    let server = ApiServer::start(store.clone(), config).await?;
    let dir = TempDir::new(tag)?;
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let client = client_for(&kubeconfig).await?;
    Ok(Lab {
        store,
        server,
        kubeconfig,
        client,
        _dir: dir,
    })
}

fn pod(ns: &str, name: &str, app: &str, ip: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            containers: vec![Container {
                name: "web".into(),
                image: Some("lab/backend".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: ip.map(Into::into),
            ..Default::default()
        }),
    }
}

fn slice(ns: &str, name: &str, service: &str, addresses: &[&str]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_string(),
                service.to_string(),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(
            addresses
                .iter()
                .map(|a| Endpoint {
                    addresses: vec![a.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        ..Default::default()
                    }),
                    node_name: Some(NODE.into()),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: None,
    }
}

/// The next watch event, within [`WAIT`].
async fn next_event<S, K>(stream: &mut S) -> Result<WatchEvent<K>>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .context("no watch event within 10 s")?
            .ok_or_else(|| anyhow!("watch ended"))??;
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return Ok(event);
        }
    }
}

fn name_of(event: &WatchEvent<Pod>) -> (String, String) {
    match event {
        WatchEvent::Added(p) => ("ADDED".into(), p.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(p) => (
            "MODIFIED".into(),
            p.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Deleted(p) => (
            "DELETED".into(),
            p.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Bookmark(_) => ("BOOKMARK".into(), String::new()),
        WatchEvent::Error(e) => ("ERROR".into(), e.message.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_lists_and_watches_pods() -> Result<()> {
    let lab = lab("pods", ClusterStore::new(NODE)).await?;
    lab.store
        .apply_pod(pod("default", "web-1", "web", Some("10.244.0.11")));
    lab.store
        .apply_pod(pod("default", "api-1", "api", Some("10.244.0.12")));
    lab.store
        .apply_pod(pod("shop", "web-2", "web", Some("10.244.0.13")));

    let all: Api<Pod> = Api::all(lab.client.clone());
    let listed = all.list(&ListParams::default()).await?;
    let mut names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["api-1", "web-1", "web-2"]);
    let rv = listed
        .metadata
        .resource_version
        .clone()
        .context("list has a resourceVersion")?;

    let default: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    let web = default
        .list(&ListParams::default().labels("app=web"))
        .await?;
    assert_eq!(web.items.len(), 1);
    assert_eq!(web.items[0].metadata.name.as_deref(), Some("web-1"));
    let on_node = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={NODE}")))
        .await?;
    assert_eq!(on_node.items.len(), 3);
    let elsewhere = all
        .list(&ListParams::default().fields("spec.nodeName=other"))
        .await?;
    assert!(elsewhere.items.is_empty());
    let got = default.get("web-1").await?;
    assert!(got.metadata.uid.is_some(), "the store assigns a uid");
    assert!(got.metadata.creation_timestamp.is_some());

    // Changes made through the store appear on a watch from the list's version.
    let mut stream = all
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await?
        .boxed();
    let mut terminating = lab.store.get_pod("default", "web-1").context("web-1")?;
    terminating.metadata.deletion_timestamp = Some(fivexx_lab::control::store::now());
    lab.store.apply_pod(terminating);
    lab.store.apply_pod(pod("default", "api-2", "api", None)); // filtered out
    lab.store.apply_pod(pod("default", "web-3", "web", None));
    lab.store.delete_pod("default", "web-1");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(name_of(&next_event(&mut stream).await?));
    }
    assert_eq!(
        seen,
        [
            ("MODIFIED".to_string(), "web-1".to_string()),
            ("ADDED".to_string(), "web-3".to_string()),
            ("DELETED".to_string(), "web-1".to_string()),
        ]
    );

    // A pod relabelled out of the selection is DELETED for this watcher.
    let mut relabelled = lab.store.get_pod("default", "web-3").context("web-3")?;
    relabelled.metadata.labels = Some(BTreeMap::from([("app".to_string(), "api".to_string())]));
    lab.store.apply_pod(relabelled);
    assert_eq!(
        name_of(&next_event(&mut stream).await?),
        ("DELETED".into(), "web-3".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_watcher_follows_endpoint_slices() -> Result<()> {
    let lab = lab("slices", ClusterStore::new(NODE)).await?;
    lab.store.apply_endpoint_slice(slice(
        "default",
        "web-abc",
        "web",
        &["10.244.0.11", "10.244.0.12"],
    ));
    let api: Api<EndpointSlice> = Api::namespaced(lab.client.clone(), "default");
    let config = watcher::Config::default().labels("kubernetes.io/service-name=web");
    let mut events = watcher(api.clone(), config).boxed();

    let mut initial = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, events.try_next())
            .await??
            .context("watcher ended")?;
        match event {
            watcher::Event::Init => {}
            watcher::Event::InitApply(s) => initial.push(s),
            watcher::Event::InitDone => break,
            other => bail!("unexpected event before InitDone: {other:?}"),
        }
    }
    assert_eq!(initial.len(), 1);
    assert_eq!(initial[0].endpoints.as_ref().map_or(0, Vec::len), 2);

    // The kubelet simulator removes a terminating endpoint.
    lab.store
        .apply_endpoint_slice(slice("default", "web-abc", "web", &["10.244.0.12"]));
    let event = tokio::time::timeout(WAIT, events.try_next())
        .await??
        .context("watcher ended")?;
    match event {
        watcher::Event::Apply(s) => assert_eq!(
            s.endpoints.unwrap_or_default()[0].addresses,
            ["10.244.0.12"]
        ),
        other => bail!("expected Apply, got {other:?}"),
    }
    lab.store.delete_endpoint_slice("default", "web-abc");
    let event = tokio::time::timeout(WAIT, events.try_next())
        .await??
        .context("watcher ended")?;
    assert!(matches!(event, watcher::Event::Delete(_)), "got {event:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_version_is_gone() -> Result<()> {
    let lab = lab("gone", ClusterStore::new(NODE)).await?;
    lab.store.apply_pod(pod("default", "web-1", "web", None));
    lab.store.compact();
    let api: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    let mut stream = api.watch(&WatchParams::default(), "1").await?.boxed();
    match next_event(&mut stream).await? {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => bail!("expected a 410 ERROR event, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_and_delete_daemonset_and_clusterrole() -> Result<()> {
    let lab = lab("ssa", ClusterStore::new(NODE)).await?;
    lab.store.set_daemon_set_readiness(|_, node| node == NODE);
    let ssa = PatchParams::apply("kubectl-fivexx").force();

    let namespaces: Api<Namespace> = Api::all(lab.client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "fivexx-system", "labels": {"app.kubernetes.io/managed-by": "kubectl-fivexx"}},
    }))?;
    namespaces
        .patch("fivexx-system", &ssa, &Patch::Apply(&ns))
        .await?;

    let ds_json = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "fivexx-agent", "namespace": "fivexx-system",
                     "labels": {"app.kubernetes.io/managed-by": "kubectl-fivexx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "fivexx-agent"}},
            "template": {
                "metadata": {"labels": {"app": "fivexx-agent"}},
                "spec": {"hostNetwork": true, "containers": [{"name": "agent", "image": "fivexx/agent:0.1.0"}]},
            },
        },
    });
    let daemon_sets: Api<DaemonSet> = Api::namespaced(lab.client.clone(), "fivexx-system");
    let applied = daemon_sets
        .patch("fivexx-agent", &ssa, &Patch::Apply(&ds_json))
        .await?;
    assert_eq!(applied.metadata.generation, Some(1));
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kubectl-fivexx"]);
    let status = daemon_sets
        .get("fivexx-agent")
        .await?
        .status
        .context("DaemonSet status")?;
    assert_eq!(
        (status.desired_number_scheduled, status.number_ready),
        (1, 1)
    );

    // The DaemonSet controller made the agent pod, findable by label and node.
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "fivexx-system");
    let agents = pods
        .list(
            &ListParams::default()
                .labels("app=fivexx-agent")
                .fields(&format!("spec.nodeName={NODE}")),
        )
        .await?;
    assert_eq!(agents.items.len(), 1);

    // Re-applying an unchanged manifest keeps the generation; a change bumps it.
    let again = daemon_sets
        .patch("fivexx-agent", &ssa, &Patch::Apply(&ds_json))
        .await?;
    assert_eq!(again.metadata.generation, Some(1));
    let mut changed = ds_json.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "fivexx/agent:0.2.0".into();
    let bumped = daemon_sets
        .patch("fivexx-agent", &ssa, &Patch::Apply(&changed))
        .await?;
    assert_eq!(bumped.metadata.generation, Some(2));

    // Another manager without force conflicts.
    let err = daemon_sets
        .patch(
            "fivexx-agent",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&ds_json),
        )
        .await
        .expect_err("conflicting apply must fail");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );

    let roles: Api<ClusterRole> = Api::all(lab.client.clone());
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "fivexx-agent-read", "labels": {"app.kubernetes.io/managed-by": "kubectl-fivexx"}},
        "rules": [{"apiGroups": [""], "resources": ["pods", "nodes", "events"], "verbs": ["get", "list", "watch"]}],
    });
    roles
        .patch("fivexx-agent-read", &ssa, &Patch::Apply(&role))
        .await?;
    let mine = ListParams::default().labels("app.kubernetes.io/managed-by=kubectl-fivexx");
    assert_eq!(roles.list(&mine).await?.items.len(), 1);
    assert_eq!(
        roles.get("fivexx-agent-read").await?.rules.map(|r| r.len()),
        Some(1)
    );

    // Undeploy by label: the DaemonSet goes and takes its pod with it.
    daemon_sets
        .delete_collection(&DeleteParams::default(), &mine)
        .await?;
    assert!(daemon_sets.list(&mine).await?.items.is_empty());
    assert!(
        pods.list(&ListParams::default()).await?.items.is_empty(),
        "agent pod garbage-collected"
    );
    let deleted = roles
        .delete("fivexx-agent-read", &DeleteParams::default())
        .await?;
    assert!(deleted.is_right(), "an immediate delete returns a Status");
    let err = roles.get("fivexx-agent-read").await.expect_err("deleted");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "{err}"
    );
    namespaces
        .delete("fivexx-system", &DeleteParams::default())
        .await?;
    assert!(lab
        .store
        .get_daemon_set("fivexx-system", "fivexx-agent")
        .is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects() -> Result<()> {
    let config = ApiServerConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let lab = lab_with("errors", ClusterStore::new(NODE), config).await?;
    lab.store.apply_pod(pod("default", "web-1", "web", None));
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "default");

    lab.server.deny("list", "pods");
    let err = pods.list(&ListParams::default()).await.expect_err("denied");
    let kube::Error::Api(status) = &err else {
        bail!("expected a Status, got {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods is forbidden: User \"fivexx-lab-user\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    assert!(pods.get("web-1").await.is_ok(), "only list is denied");
    lab.server.allow("list", "pods");
    assert_eq!(pods.list(&ListParams::default()).await?.items.len(), 1);

    let err = pods.get("missing").await.expect_err("missing");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.message == "pods \"missing\" not found"),
        "{err}"
    );

    let err = pods
        .create(
            &PostParams::default(),
            &pod("default", "web-1", "web", None),
        )
        .await
        .expect_err("exists");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err}"
    );

    let mut stale = pods.get("web-1").await?;
    lab.store
        .apply_pod(pod("default", "web-1", "web", Some("10.244.0.9")));
    stale.metadata.labels = None;
    let err = pods
        .replace("web-1", &PostParams::default(), &stale)
        .await
        .expect_err("stale");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err}"
    );

    let err = pods
        .list(&ListParams::default().labels("app in web"))
        .await
        .expect_err("bad selector");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400),
        "{err}"
    );

    // A client with the wrong token is refused.
    let dir = TempDir::new("errors-token")?;
    let path = dir.0.join("kubeconfig");
    fivexx_lab::control::kubeconfig::write(&path, &lab.server.url(), Some("wrong"), None)?;
    let stranger: Api<Pod> = Api::namespaced(client_for(&path).await?, "default");
    let err = stranger
        .list(&ListParams::default())
        .await
        .expect_err("bad token");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 401),
        "{err}"
    );
    Ok(())
}

/// A real TCP server that greets, then echoes in upper case.
async fn echo_server() -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                if conn.write_all(b"hello from the pod\n").await.is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let upper = buf[..n].to_ascii_uppercase();
                    if conn.write_all(&upper).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn read_exactly(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    n: usize,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .context("no bytes within 10 s")??;
    Ok(buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_a_real_local_port() -> Result<()> {
    let lab = lab("portforward", ClusterStore::new(NODE)).await?;
    let echo = echo_server().await?;
    lab.store.apply_pod(pod(
        "fivexx-system",
        "fivexx-agent-lab-node",
        "fivexx-agent",
        Some("10.244.0.99"),
    ));
    lab.store
        .map_port_forward("fivexx-system", "fivexx-agent-lab-node", 7070, echo);
    // 7071 goes to a local port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    lab.store
        .map_port_forward("fivexx-system", "fivexx-agent-lab-node", 7071, closed);
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "fivexx-system");

    let mut forwarder = pods.portforward("fivexx-agent-lab-node", &[7070]).await?;
    let mut stream = forwarder.take_stream(7070).context("port stream")?;
    assert_eq!(
        read_exactly(&mut stream, 19).await?,
        b"hello from the pod\n"
    );
    stream.write_all(b"ping through the api server").await?;
    assert_eq!(
        read_exactly(&mut stream, 27).await?,
        b"PING THROUGH THE API SERVER"
    );
    // A second round trip on the same tunnel, larger than one frame.
    let big = vec![b'x'; 100_000];
    stream.write_all(&big).await?;
    assert_eq!(
        read_exactly(&mut stream, big.len()).await?,
        vec![b'X'; big.len()]
    );
    drop(stream);
    forwarder.join().await?;

    // Two ports on one tunnel; the second is refused and reports an error.
    let mut forwarder = pods
        .portforward("fivexx-agent-lab-node", &[7070, 7071])
        .await?;
    let error = forwarder.take_error(7071).context("error channel")?;
    let message = tokio::time::timeout(WAIT, error)
        .await?
        .context("an error message")?;
    assert!(message.contains("error forwarding port 7071"), "{message}");
    let mut stream = forwarder.take_stream(7070).context("port stream")?;
    assert_eq!(
        read_exactly(&mut stream, 19).await?,
        b"hello from the pod\n"
    );
    forwarder.abort();

    // Denied by RBAC: a Status before any upgrade.
    lab.server.deny("create", "pods/portforward");
    let Err(err) = pods.portforward("fivexx-agent-lab-node", &[7070]).await else {
        bail!("a denied port-forward must fail");
    };
    assert!(
        format!("{err}").contains("cannot create resource \"pods/portforward\""),
        "{err}"
    );
    lab.server.allow_all();
    let Err(err) = pods.portforward("no-such-pod", &[7070]).await else {
        bail!("a port-forward to a missing pod must fail");
    };
    assert!(format!("{err}").contains("not found"), "{err}");

    // Two connections accepted (refused and missing ones are not), read in
    // process and from the debug endpoint.
    let stats = lab.server.port_forwards();
    assert_eq!(stats.total, 2, "{stats:?}");
    assert_eq!(
        stats.in_namespace("fivexx-system"),
        [("fivexx-agent-lab-node".to_string(), 2)].into()
    );
    let served = debug_port_forwards(lab.server.addr()).await?;
    assert_eq!(served, serde_json::to_value(&stats)?);
    Ok(())
}

/// `GET /debug/fivexx/portforwards` over plain HTTP/1.1, as a script reads it.
async fn debug_port_forwards(addr: std::net::SocketAddr) -> Result<serde_json::Value> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(
        b"GET /debug/fivexx/portforwards HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await?;
    let (head, body) = raw.split_once("\r\n\r\n").context("an HTTP response")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(serde_json::from_str(body)?)
}

/// The real kubectl, if installed (it is not part of the lab's setup).
fn kubectl() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("kubectl"))
        .find(|p| p.is_file())
}

async fn run_kubectl(
    bin: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> Result<String> {
    let out = tokio::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_gets_pods_and_endpointslices() -> Result<()> {
    let Some(bin) = kubectl() else {
        println!("SKIPPED: kubectl is not installed; install it to run this test");
        return Ok(());
    };
    let lab = lab("kubectl", ClusterStore::new(NODE)).await?;
    lab.store
        .apply_pod(pod("default", "web-1", "web", Some("10.244.0.11")));
    lab.store
        .apply_pod(pod("shop", "cart-1", "cart", Some("10.244.0.12")));
    lab.store
        .apply_endpoint_slice(slice("default", "web-abc", "web", &["10.244.0.11"]));

    let out = run_kubectl(&bin, &lab.kubeconfig, &["get", "pods", "-A"]).await?;
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAMESPACE") && header.contains("STATUS"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("default") && l.contains("web-1") && l.contains("Running")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("shop") && l.contains("cart-1")),
        "{out}"
    );

    let out = run_kubectl(&bin, &lab.kubeconfig, &["get", "endpointslices"]).await?;
    assert!(
        out.lines()
            .any(|l| l.starts_with("web-abc") && l.contains("10.244.0.11")),
        "{out}"
    );

    let out = run_kubectl(
        &bin,
        &lab.kubeconfig,
        &["get", "pod", "web-1", "-o", "json"],
    )
    .await?;
    let pod: Pod = serde_json::from_str(&out)?;
    assert_eq!(
        pod.status.and_then(|s| s.pod_ip).as_deref(),
        Some("10.244.0.11")
    );

    lab.store.record_event(k8s_openapi::api::core::v1::Event {
        involved_object: k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web-1".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        reason: Some("Killing".into()),
        message: Some("Stopping container web".into()),
        ..Default::default()
    });
    let out = run_kubectl(&bin, &lab.kubeconfig, &["get", "events", "-A"]).await?;
    assert!(
        out.lines()
            .any(|l| l.contains("Killing") && l.contains("pod/web-1")),
        "{out}"
    );

    let out = run_kubectl(&bin, &lab.kubeconfig, &["get", "nodes", "-o", "name"]).await?;
    assert_eq!(out.trim(), format!("node/{NODE}"));

    // kubectl drain: cordon (a patch), then evict the node's pods.
    let out = run_kubectl(
        &bin,
        &lab.kubeconfig,
        &["drain", NODE, "--ignore-daemonsets", "--force"],
    )
    .await?;
    assert!(out.contains("drained"), "{out}");
    assert!(
        lab.store.list_pods(None).is_empty(),
        "evicted pods are gone"
    );
    let node = lab.store.get_node(NODE).context("node")?;
    assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));

    // kubectl reports the server's Forbidden Status.
    lab.server.deny("list", "pods");
    let err = run_kubectl(&bin, &lab.kubeconfig, &["get", "pods"])
        .await
        .expect_err("denied");
    assert!(
        format!("{err}").contains("cannot list resource \"pods\""),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_reviews_follow_the_deny_list() -> Result<()> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let lab = lab("ssar", ClusterStore::new(NODE)).await?;
    lab.server.deny("create", "pods/portforward");
    let reviews: Api<SelfSubjectAccessReview> = Api::all(lab.client.clone());
    let ask = |verb: &str, resource: &str, subresource: Option<&str>| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                namespace: Some("fivexx-system".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let allowed = |r: SelfSubjectAccessReview| r.status.map(|s| s.allowed);
    let pp = PostParams::default();
    assert_eq!(
        allowed(reviews.create(&pp, &ask("list", "pods", None)).await?),
        Some(true)
    );
    assert_eq!(
        allowed(
            reviews
                .create(&pp, &ask("create", "pods", Some("portforward")))
                .await?
        ),
        Some(false)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_set_readiness_follows_the_lab_hook() -> Result<()> {
    let lab = lab("dsready", ClusterStore::new(NODE)).await?;
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ready.clone();
    lab.store
        .set_daemon_set_readiness(move |_, _| flag.load(std::sync::atomic::Ordering::SeqCst));
    lab.store.apply_namespace("fivexx-system");
    let daemon_sets: Api<DaemonSet> = Api::namespaced(lab.client.clone(), "fivexx-system");
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "fivexx-agent", "namespace": "fivexx-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "fivexx-agent"}},
            "template": {"metadata": {"labels": {"app": "fivexx-agent"}},
                         "spec": {"containers": [{"name": "agent", "image": "fivexx/agent"}]}},
        },
    });
    let applied = daemon_sets
        .patch(
            "fivexx-agent",
            &PatchParams::apply("kubectl-fivexx"),
            &Patch::Apply(&ds),
        )
        .await?;
    assert_eq!(applied.status.map(|s| s.number_ready), Some(0));
    let rv = daemon_sets
        .get("fivexx-agent")
        .await?
        .metadata
        .resource_version
        .context("rv")?;

    // `deploy` waits on a watch; the lab's agent becomes healthy.
    let mut stream = daemon_sets
        .watch(&WatchParams::default(), &rv)
        .await?
        .boxed();
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    lab.store.refresh_daemon_sets();
    match next_event(&mut stream).await? {
        WatchEvent::Modified(ds) => {
            assert_eq!(
                ds.status
                    .map(|s| (s.number_ready, s.desired_number_scheduled)),
                Some((1, 1))
            )
        }
        other => bail!("expected MODIFIED, got {other:?}"),
    }
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "fivexx-system");
    let agent = pods.get("fivexx-agent-lab-node").await?;
    let statuses = agent
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    assert!(statuses.iter().all(|c| c.ready) && statuses.len() == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_gets_initial_events() -> Result<()> {
    let lab = lab("streaming", ClusterStore::new(NODE)).await?;
    lab.store.apply_pod(pod("default", "web-1", "web", None));
    lab.store.apply_pod(pod("default", "web-2", "web", None));
    let api: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    let mut events = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, events.try_next())
            .await??
            .context("watcher ended")?
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(p) => initial.push(p.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => bail!("unexpected event before InitDone: {other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, ["web-1", "web-2"]);
    lab.store.delete_pod("default", "web-2");
    let event = tokio::time::timeout(WAIT, events.try_next())
        .await??
        .context("watcher ended")?;
    assert!(
        matches!(&event, watcher::Event::Delete(p) if p.metadata.name.as_deref() == Some("web-2")),
        "{event:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_delete_and_eviction_leave_pods_terminating() -> Result<()> {
    let config = ApiServerConfig {
        graceful_pod_delete: true,
        ..Default::default()
    };
    let lab = lab_with("graceful", ClusterStore::new(NODE), config).await?;
    let mut with_grace = pod("default", "web-1", "web", Some("10.244.0.11"));
    with_grace
        .spec
        .as_mut()
        .context("spec")?
        .termination_grace_period_seconds = Some(12);
    lab.store.apply_pod(with_grace);
    lab.store
        .apply_pod(pod("default", "web-2", "web", Some("10.244.0.12")));
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "default");

    let deleted = pods.delete("web-1", &DeleteParams::default()).await?;
    let terminating = deleted
        .left()
        .context("a graceful delete returns the pod")?;
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(12));

    pods.evict("web-2", &kube::api::EvictParams::default())
        .await?;
    let evicted = lab
        .store
        .get_pod("default", "web-2")
        .context("still there until the kubelet acts")?;
    assert!(evicted.metadata.deletion_timestamp.is_some());

    // The kubelet's final delete.
    lab.store.delete_pod("default", "web-2");
    assert!(pods.get_opt("web-2").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_send_bookmarks_and_honour_timeouts() -> Result<()> {
    let config = ApiServerConfig {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let lab = lab_with("bookmarks", ClusterStore::new(NODE), config).await?;
    lab.store.apply_pod(pod("default", "web-1", "web", None));
    let api: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("rv")?;
    // A change to another kind moves the bookmark's version forward.
    lab.store
        .apply_endpoint_slice(slice("default", "web-abc", "web", &[]));
    let now = lab.store.resource_version().to_string();

    let started = std::time::Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await?
        .boxed();
    let mut bookmarks = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, stream.next()).await? {
        match event? {
            WatchEvent::Bookmark(b) => bookmarks.push(b.metadata.resource_version),
            other => bail!("only bookmarks expected, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(bookmarks.len() >= 3, "{bookmarks:?}");
    assert!(
        bookmarks.iter().all(|b| *b == now),
        "{bookmarks:?} vs {now}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_served_as_core_v1_and_events_k8s_io_v1() -> Result<()> {
    use k8s_openapi::api::core::v1::{Event, ObjectReference};
    use k8s_openapi::api::events::v1::Event as EventV1;
    let lab = lab("events", ClusterStore::new(NODE)).await?;
    let killing = |name: &str| Event {
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        reason: Some("Killing".into()),
        message: Some(format!("Stopping container web in {name}")),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("kubelet".into()),
            host: Some(NODE.into()),
        }),
        ..Default::default()
    };
    lab.store.record_event(killing("web-1"));

    let core: Api<Event> = Api::all(lab.client.clone());
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=web-1,reason=Killing"))
        .await?;
    assert_eq!(listed.items.len(), 1);
    let rv = listed.metadata.resource_version.context("rv")?;

    let v1: Api<EventV1> = Api::namespaced(lab.client.clone(), "default");
    let listed = v1
        .list(&ListParams::default().fields("regarding.name=web-1"))
        .await?;
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].note.as_deref(),
        Some("Stopping container web in web-1")
    );
    assert_eq!(
        listed.items[0].reporting_controller.as_deref(),
        Some("kubelet")
    );

    let mut stream = v1
        .watch(&WatchParams::default().fields("regarding.name=web-2"), &rv)
        .await?
        .boxed();
    lab.store.record_event(killing("web-3"));
    lab.store.record_event(killing("web-2"));
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await?
            .context("watch ended")??;
        match event {
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Added(e) => {
                assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some("web-2"));
                break;
            }
            other => bail!("expected ADDED, got {other:?}"),
        }
    }
    let err = v1
        .create(&PostParams::default(), &EventV1::default())
        .await
        .expect_err("read-only");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 405),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_pod_ends_its_port_forward_and_a_stopped_server_is_unreachable() -> Result<()> {
    let lab = lab("shutdown", ClusterStore::new(NODE)).await?;
    // A "pod" that answers once and dies, as an agent crashing mid-trace.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(b"bye").await;
        }
    });
    lab.store
        .apply_pod(pod("default", "agent", "agent", Some("10.244.0.50")));
    lab.store
        .map_port_forward("default", fivexx_lab::control::store::ANY_POD, 9000, addr);
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    let mut forwarder = pods.portforward("agent", &[9000]).await?;
    let mut stream = forwarder.take_stream(9000).context("stream")?;
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut got)).await??;
    assert_eq!(got, b"bye", "bytes, then EOF when the pod's socket closes");

    // A watch open when the server stops ends; later requests cannot connect.
    let mut watch = pods.watch(&WatchParams::default(), "0").await?.boxed();
    let Lab { server, .. } = lab;
    server.shutdown().await;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = watch.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch ends when the server stops");
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("server is gone");
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "a connection error, not a Status: {err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_token_serves_kube_rs_and_kubectl() -> Result<()> {
    let config = ApiServerConfig {
        tls: true,
        token: Some("lab-token".into()),
        ..Default::default()
    };
    let lab = lab_with("tls", ClusterStore::new(NODE), config).await?;
    assert!(lab.server.url().starts_with("https://127.0.0.1:"));
    lab.store
        .apply_pod(pod("default", "web-1", "web", Some("10.244.0.11")));
    let echo = echo_server().await?;
    lab.store.map_port_forward("default", "web-1", 8080, echo);

    // kube-rs trusts the CA from the kubeconfig and sends the token.
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    assert_eq!(pods.list(&ListParams::default()).await?.items.len(), 1);
    let mut forwarder = pods.portforward("web-1", &[8080]).await?;
    let mut stream = forwarder.take_stream(8080).context("stream")?;
    assert_eq!(
        read_exactly(&mut stream, 19).await?,
        b"hello from the pod\n"
    );
    forwarder.abort();

    // A client without the CA refuses the server's certificate.
    let dir = TempDir::new("tls-noca")?;
    let path = dir.0.join("kubeconfig");
    fivexx_lab::control::kubeconfig::write(&path, &lab.server.url(), Some("lab-token"), None)?;
    let untrusting: Api<Pod> = Api::namespaced(client_for(&path).await?, "default");
    let err = untrusting
        .list(&ListParams::default())
        .await
        .expect_err("unknown CA");
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "a TLS error, not a Status: {err}"
    );

    let Some(bin) = kubectl() else {
        println!("SKIPPED (kubectl part): kubectl is not installed");
        return Ok(());
    };
    let out = run_kubectl(&bin, &lab.kubeconfig, &["get", "pods"]).await?;
    assert!(out.contains("web-1"), "{out}");
    Ok(())
}

/// `pods/log` from a routed file: plain and with `timestamps` (a `$msec`
/// prefix is the runtime's stamp, other lines are stamped when read),
/// `sinceTime`, `follow` until the pod is gone, container validation and
/// RBAC on `pods/log`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_follow_a_file_with_timestamps_and_since_time() -> Result<()> {
    use futures::AsyncBufReadExt;
    use kube::api::LogParams;
    use std::io::Write;

    let lab = lab("podlog", ClusterStore::new(NODE)).await?;
    let log = lab._dir.0.join("controller.log");
    std::fs::write(
        &log,
        "1732519154.313 first line\n1732519155.000000001 second line\n",
    )?;
    lab.store.apply_pod(pod(
        "ingress-nginx",
        "ctl",
        "ingress-nginx",
        Some("10.244.0.2"),
    ));
    lab.store.map_pod_log(
        "ingress-nginx",
        fivexx_lab::control::store::ANY_POD,
        log.clone(),
    );
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "ingress-nginx");

    // Plain: the stamps are the runtime's business, not the content.
    let plain = pods.logs("ctl", &LogParams::default()).await?;
    assert_eq!(plain, "first line\nsecond line\n");
    let stamped = pods
        .logs(
            "ctl",
            &LogParams {
                timestamps: true,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(
        stamped,
        "2024-11-25T07:19:14.313999999Z first line\n2024-11-25T07:19:15.000000001Z second line\n",
        "a $msec stamp is the end of its millisecond: never before the write"
    );
    // sinceTime drops the earlier line (kube-rs sends whole seconds).
    let since = pods
        .logs(
            "ctl",
            &LogParams {
                timestamps: true,
                since_time: Some("2024-11-25T07:19:15Z".parse()?),
                container: Some("web".into()),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(since, "2024-11-25T07:19:15.000000001Z second line\n");

    // Follow: lines appended later arrive; the stream ends with the pod.
    let before = jiff::Timestamp::now();
    let mut lines = pods
        .log_stream(
            "ctl",
            &LogParams {
                follow: true,
                timestamps: true,
                since_time: Some("2024-11-25T07:19:15Z".parse()?),
                ..Default::default()
            },
        )
        .await?
        .lines();
    let first = tokio::time::timeout(WAIT, lines.next())
        .await?
        .context("eof")??;
    assert_eq!(first, "2024-11-25T07:19:15.000000001Z second line");
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log)?;
        writeln!(f, "1732519156.5 third line")?;
        write!(f, "no stamp, ")?;
        f.flush()?;
        // A line is sent once complete.
        tokio::time::sleep(Duration::from_millis(200)).await;
        writeln!(f, "stamped when read")?;
    }
    let third = tokio::time::timeout(WAIT, lines.next())
        .await?
        .context("eof")??;
    assert_eq!(third, "2024-11-25T07:19:16.599999999Z third line");
    let fourth = tokio::time::timeout(WAIT, lines.next())
        .await?
        .context("eof")??;
    let (stamp, content) = fourth.split_once(' ').context("a stamp")?;
    assert_eq!(content, "no stamp, stamped when read");
    let stamp: jiff::Timestamp = stamp.parse()?;
    assert!(
        stamp >= before && stamp <= jiff::Timestamp::now(),
        "{stamp}"
    );
    // A line written just before the pod goes (and its file with it) is
    // still sent: the follow reads to the end, as for a finished container.
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log)?;
        writeln!(f, "1732519157.250 last line")?;
    }
    std::fs::remove_file(&log)?;
    lab.store.delete_pod("ingress-nginx", "ctl");
    let last = tokio::time::timeout(WAIT, lines.next())
        .await?
        .context("eof")??;
    assert_eq!(last, "2024-11-25T07:19:17.250999999Z last line");
    let end = tokio::time::timeout(WAIT, lines.next()).await?;
    assert!(end.is_none(), "the follow ends with the pod: {end:?}");

    pod_log_errors(&lab, &pods, &log).await
}

/// `pods/log` errors: no such pod, a wrong container, two containers and
/// none named, RBAC.
async fn pod_log_errors(lab: &Lab, pods: &Api<Pod>, log: &std::path::Path) -> Result<()> {
    use kube::api::LogParams;
    let err = pods.logs("ctl", &LogParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err}"
    );
    std::fs::write(log, "1732519155.000000001 second line\n")?;
    let mut two = pod("ingress-nginx", "two", "ingress-nginx", None);
    if let Some(spec) = two.spec.as_mut() {
        spec.containers.push(Container {
            name: "controller".into(),
            ..Default::default()
        });
    }
    lab.store.apply_pod(two);
    let err = pods.logs("two", &LogParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message.contains("choose one of: [web controller]")),
        "{err}"
    );
    let bad = LogParams {
        container: Some("nope".into()),
        ..Default::default()
    };
    let err = pods.logs("two", &bad).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400),
        "{err}"
    );
    let ok = LogParams {
        container: Some("controller".into()),
        ..Default::default()
    };
    assert!(pods.logs("two", &ok).await?.contains("second line"));
    lab.server.deny("get", "pods/log");
    let err = pods.logs("two", &ok).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403 && s.message.contains("cannot get resource \"pods/log\"")),
        "{err}"
    );
    Ok(())
}
