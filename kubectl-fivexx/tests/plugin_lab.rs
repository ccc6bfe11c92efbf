//! End-to-end: the real `kubectl-fivexx` binary against the lab's fake
//! control plane (real HTTP, real kube-rs on both sides, port-forward over
//! WebSocket to a real local port), with a kubeconfig, as a user runs it.
//!
//! Tests that need the real eBPF agent (root) say why they skip otherwise.
//! Agents that misbehave on purpose (a newer version, dying mid-trace) are
//! small in-test servers speaking the real wire protocol.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fivexx_core::capability::{BtfOffsets, CapabilityReport};
use fivexx_core::protocol::{
    self as wire, AgentMessage, AgentStats, ClientMessage, StreamFilter, PROTOCOL_VERSION,
};
use fivexx_lab::control::apiserver::{ApiServer, ApiServerConfig};
use fivexx_lab::control::store::{ClusterStore, Kind, ANY_POD};
use fivexx_lab::harness::skip_unless_root;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const NODE: &str = "lab-node-1";
const BIN: &str = env!("CARGO_BIN_EXE_kubectl-fivexx");

/// The agent binary: $FIVEXX_AGENT, else the workspace's target dirs.
fn agent_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FIVEXX_AGENT") {
        return PathBuf::from(p);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let mut cands: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("fivexx-agent"))
        .collect();
    cands.push(ws.join("target/debug/fivexx-agent"));
    cands.push(ws.join("target/release/fivexx-agent"));
    cands
        .into_iter()
        .find(|p| p.is_file())
        .expect("fivexx-agent not built: cargo build -p tracer-user, or set FIVEXX_AGENT")
}

/// A fake control plane on its own runtime, with a kubeconfig.
struct Lab {
    rt: tokio::runtime::Runtime,
    store: ClusterStore,
    server: Option<ApiServer>,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Lab {
    fn new(name: &str) -> Lab {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = ClusterStore::new(NODE);
        let server = rt
            .block_on(ApiServer::start(store.clone(), ApiServerConfig::default()))
            .unwrap();
        let dir = std::env::temp_dir().join(format!("fivexx-plugin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Lab {
            rt,
            store,
            server: Some(server),
            dir,
            kubeconfig,
        }
    }

    fn server(&self) -> &ApiServer {
        self.server.as_ref().unwrap()
    }

    /// Runs the plugin with this lab's kubeconfig.
    fn run(&self, args: &[&str]) -> Output {
        run_with(args, &[("KUBECONFIG", self.kubeconfig.to_str().unwrap())])
    }

    /// The agent pods' port-forwards go to `to`; DaemonSet pods are ready.
    fn route_agents(&self, to: SocketAddr) {
        self.store
            .map_port_forward("fivexx-system", ANY_POD, 7450, to);
        self.store.set_daemon_set_readiness(|_, _| true);
    }

    fn managed_objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        for kind in [
            Kind::Namespace,
            Kind::ServiceAccount,
            Kind::ClusterRole,
            Kind::ClusterRoleBinding,
            Kind::DaemonSet,
        ] {
            let (objs, _) = self.store.list(kind, None);
            for o in objs {
                if o.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
                    .and_then(|v| v.as_str())
                    == Some("kubectl-fivexx")
                {
                    out.push(format!(
                        "{}/{}",
                        kind.info().kind,
                        o.pointer("/metadata/name")
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// A running pod of namespace `default` on the lab node.
    fn add_pod(&self, name: &str, ip: &str) {
        self.store.apply_pod(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(NODE.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                ..Default::default()
            }),
        });
    }
}

fn run_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    eprintln!(
        "$ kubectl fivexx {}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure: non-zero exit, a one-line cause containing `cause`,
/// and a `hint:` line containing `hint`.
fn assert_fails(o: &Output, cause: &str, hint: &str) {
    assert!(!o.status.success(), "expected failure");
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with("kubectl fivexx: "))
        .unwrap_or_else(|| panic!("no cause line in {err}"));
    assert!(line.contains(cause), "cause `{line}` lacks `{cause}`");
    let h = err
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint in {err}"));
    assert!(h.contains(hint), "hint `{h}` lacks `{hint}`");
}

/// A stand-in agent speaking the wire protocol: says Hello with
/// `version`, then Stats every 200 ms; with `die_after`, drops every
/// connection after that long, as a crashing agent pod does.
fn fake_agent(
    rt: &tokio::runtime::Runtime,
    version: &str,
    die_after: Option<Duration>,
) -> SocketAddr {
    fake_agent_recording(rt, version, die_after).0
}

/// The filters clients subscribed with, in order.
type Subscriptions = std::sync::Arc<std::sync::Mutex<Vec<StreamFilter>>>;

/// [`fake_agent`], which also records each subscription's filter.
fn fake_agent_recording(
    rt: &tokio::runtime::Runtime,
    version: &str,
    die_after: Option<Duration>,
) -> (SocketAddr, Subscriptions) {
    let subs = Subscriptions::default();
    let recorded = subs.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let version = version.to_string();
    rt.spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let version = version.clone();
            let subs = subs.clone();
            tokio::spawn(async move {
                let mut f = Framed::new(sock, LengthDelimitedCodec::new());
                let Some(Ok(first)) = f.next().await else {
                    return;
                };
                if let Ok(ClientMessage::Subscribe { filter, .. }) = wire::decode_client(&first) {
                    subs.lock().unwrap().push(filter);
                }
                let hello = AgentMessage::Hello {
                    protocol: PROTOCOL_VERSION,
                    agent_version: version.clone(),
                    node: NODE.into(),
                    capabilities: CapabilityReport {
                        agent_version: version,
                        node: NODE.into(),
                        kernel_release: "6.1.0-fake".into(),
                        tracefs: None,
                        btf: true,
                        btf_error: None,
                        btf_offsets: BtfOffsets::default(),
                        ring_buffer_bytes: 1 << 20,
                        loaded: true,
                        hooks: Vec::new(),
                    },
                };
                if f.send(bytes::Bytes::from(wire::encode(&hello)))
                    .await
                    .is_err()
                {
                    return;
                }
                let start = Instant::now();
                loop {
                    if die_after.is_some_and(|d| start.elapsed() >= d) {
                        return; // drop: the stream ends without Goodbye
                    }
                    let stats = AgentMessage::Stats {
                        stats: AgentStats {
                            clients: 1,
                            ..Default::default()
                        },
                    };
                    if f.send(bytes::Bytes::from(wire::encode(&stats)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    (addr, recorded)
}

/// The real agent, serving on a free loopback port.
struct RealAgent {
    child: std::process::Child,
    addr: SocketAddr,
}

impl RealAgent {
    fn start() -> RealAgent {
        let bin = agent_bin();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(&bin)
            .args(["serve", "--listen", &addr.to_string(), "--node", NODE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(&bin)
                .args(["probe", "--addr", &addr.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the agent did not start serving");
            std::thread::sleep(Duration::from_millis(200));
        }
        RealAgent { child, addr }
    }
}

impl Drop for RealAgent {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn deploy_status_version_undeploy_with_the_real_agent() {
    if skip_unless_root("deploy_status_version_undeploy_with_the_real_agent") {
        return;
    }
    let lab = Lab::new("deploy");
    let agent = RealAgent::start();
    lab.route_agents(agent.addr);

    let out = lab.run(&["deploy", "--timeout", "30s"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("agents ready 1/1"),
        "no progress line"
    );
    assert!(stdout(&out).contains(NODE) && stdout(&out).contains(&kernel_release()));
    assert_eq!(
        lab.managed_objects(),
        [
            "ClusterRole/fivexx-agent",
            "ClusterRoleBinding/fivexx-agent",
            "DaemonSet/fivexx-agent",
            "Namespace/fivexx-system",
            "ServiceAccount/fivexx-agent",
        ]
    );
    let ds = lab
        .store
        .get_daemon_set("fivexx-system", "fivexx-agent")
        .unwrap();
    let pod = ds.spec.template.spec.unwrap();
    assert_eq!(pod.host_pid, Some(true));
    let sc = pod.containers[0].security_context.clone().unwrap();
    assert_ne!(sc.privileged, Some(true));
    assert_eq!(sc.capabilities.unwrap().add.unwrap(), ["BPF", "PERFMON"]);

    let out = lab.run(&["status", "-o", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v[0];
    assert_eq!(a["node"], NODE);
    assert_eq!(a["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(a["kernel"], kernel_release().as_str());
    assert!(a["hooks_attached"].as_u64().unwrap() >= 1, "{a}");
    assert!(a["error"].is_null(), "{a}");
    let out = lab.run(&["status"]);
    let table = stdout(&out);
    assert!(
        table.starts_with("NODE") && table.contains("CLIENTS") && table.contains(" ok"),
        "{table}"
    );

    let out = lab.run(&["version"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(&format!("Client Version: {}", env!("CARGO_PKG_VERSION"))));
    assert!(
        text.contains(&format!(
            "Agent Version: {} (node {NODE})",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );

    let out = lab.run(&["undeploy"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("namespace/fivexx-system deleted"));
    assert!(
        lab.managed_objects().is_empty(),
        "{:?}",
        lab.managed_objects()
    );
    assert!(lab
        .store
        .get(Kind::Namespace, "", "fivexx-system")
        .is_none());
    assert!(lab.store.get(Kind::Namespace, "", "default").is_some());
    drop(agent);
}

#[test]
fn undeploy_never_deletes_a_namespace_it_did_not_create() {
    let lab = Lab::new("ns-kept");
    lab.store.apply_namespace("fivexx-system");
    let out = lab.run(&["deploy", "--no-wait"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("not created by kubectl fivexx"));
    let out = lab.run(&["undeploy"]);
    assert!(out.status.success());
    assert!(lab.managed_objects().is_empty());
    assert!(lab
        .store
        .get(Kind::Namespace, "", "fivexx-system")
        .is_some());
    let again = lab.run(&["undeploy"]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("nothing to remove"));
}

#[test]
fn dry_run_prints_the_manifests_and_changes_nothing() {
    let lab = Lab::new("dry");
    let out = lab.run(&[
        "deploy",
        "--dry-run",
        "-o",
        "yaml",
        "--image",
        "reg.invalid/agent:dev",
        "--node-selector",
        "pool=web",
    ]);
    assert!(out.status.success());
    let y = stdout(&out);
    assert_eq!(
        y.matches("\nkind: ").count() + usize::from(y.starts_with("kind: ")),
        5,
        "{y}"
    );
    assert!(y.contains("image: reg.invalid/agent:dev") && y.contains("pool: web"));
    assert!(lab.managed_objects().is_empty());
}

#[test]
fn no_kubeconfig_and_unknown_context_fail_with_a_hint() {
    let home = std::env::temp_dir().join(format!("fivexx-plugin-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = run_with(
        &["status"],
        &[
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
            ("HOME", home.to_str().unwrap()),
        ],
    );
    assert_fails(
        &out,
        "cannot read kubeconfig /nonexistent/kubeconfig",
        "KUBECONFIG",
    );
    let lab = Lab::new("ctx");
    let out = lab.run(&["status", "--context", "nope"]);
    assert_fails(
        &out,
        "context \"nope\" not found",
        "kubectl config get-contexts",
    );
}

#[test]
fn unreachable_cluster_fails_with_a_hint() {
    let mut lab = Lab::new("down");
    let server = lab.server.take().unwrap();
    lab.rt.block_on(server.shutdown());
    let out = lab.run(&["status", "--request-timeout", "5s"]);
    assert_fails(
        &out,
        "cannot reach the cluster at http://127.0.0.1:",
        "kubectl cluster-info",
    );
}

#[test]
fn rbac_denials_name_the_verb_and_resource() {
    let lab = Lab::new("rbac");
    lab.server().deny("get", "daemonsets");
    let out = lab.run(&["status"]);
    assert_fails(
        &out,
        "forbidden: cannot get daemonsets in namespace fivexx-system",
        "kubectl auth can-i get daemonsets -n fivexx-system",
    );
    lab.server().allow_all();
    lab.server().deny("watch", "endpointslices");
    let out = lab.run(&["trace"]);
    assert_fails(
        &out,
        "forbidden: cannot watch endpointslices in namespace default",
        "`watch` on `endpointslices`",
    );
    lab.server().allow_all();
    lab.server().deny("patch", "clusterroles");
    let out = lab.run(&["deploy", "--no-wait"]);
    assert_fails(
        &out,
        "forbidden: cannot patch clusterroles at cluster scope",
        "clusterroles",
    );
    // Nothing half-created: what the failed deploy created is gone again.
    assert!(
        lab.managed_objects().is_empty(),
        "{:?}",
        lab.managed_objects()
    );
    assert!(stderr(&out).contains("nothing is left half-created"));
}

#[test]
fn agent_not_deployed_suggests_deploy() {
    let lab = Lab::new("nodeploy");
    for args in [&["status"][..], &["trace"][..], &["version"][..]] {
        let out = lab.run(args);
        assert_fails(
            &out,
            "the fivexx agent is not deployed",
            "kubectl fivexx deploy",
        );
    }
}

#[test]
fn version_skew_is_refused() {
    let lab = Lab::new("skew");
    let addr = fake_agent(&lab.rt, "9.9.0", None);
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    let out = lab.run(&["status"]);
    assert!(stdout(&out).contains("version-skew"));
    assert_fails(
        &out,
        "version skew: plugin 0.1.0 but the agent on node lab-node-1 is 9.9.0",
        "kubectl fivexx deploy",
    );
    lab.add_pod("web-1", "10.244.0.9");
    let out = lab.run(&["trace", "--duration", "2s"]);
    assert_fails(&out, "version skew", "redeploy the agent");
}

#[test]
fn an_agent_dying_mid_trace_is_reported_and_the_capture_kept() {
    let lab = Lab::new("dies");
    let addr = fake_agent(
        &lab.rt,
        env!("CARGO_PKG_VERSION"),
        Some(Duration::from_millis(1500)),
    );
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    lab.add_pod("web-1", "10.244.0.9");
    let cap = lab.dir.join("dies.fxcap");
    let out = lab.run(&[
        "trace",
        "--duration",
        "4s",
        "--capture",
        cap.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("stopped mid-trace"),
        "no live warning"
    );
    assert_fails(
        &out,
        "the agent on node lab-node-1 died mid-trace",
        "kubectl fivexx status",
    );
    // The summary was still printed and the capture is complete and readable.
    assert!(stdout(&out).contains("kubectl-fivexx") || !stdout(&out).is_empty());
    let explained = lab.run(&["explain", cap.to_str().unwrap(), "-o", "json"]);
    assert!(explained.status.success());
    let v: serde_json::Value = serde_json::from_slice(&explained.stdout).unwrap();
    assert!(v.is_object());
}

#[test]
fn ctrl_c_during_deploy_leaves_nothing_behind() {
    let lab = Lab::new("ctrlc");
    // No readiness hook: the agents never become ready and deploy waits.
    let child = Command::new(BIN)
        .args(["deploy", "--timeout", "60s"])
        .env("KUBECONFIG", &lab.kubeconfig)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab
        .store
        .get_daemon_set("fivexx-system", "fivexx-agent")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "deploy never applied the DaemonSet"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_fails(
        &out,
        "interrupted during deploy; removed the 5 object(s)",
        "",
    );
    assert!(
        lab.managed_objects().is_empty(),
        "{:?}",
        lab.managed_objects()
    );
    assert!(lab
        .store
        .get(Kind::Namespace, "", "fivexx-system")
        .is_none());
}

#[test]
fn cli_conventions_help_completion_and_bad_targets() {
    for sub in [
        "deploy",
        "undeploy",
        "status",
        "trace",
        "capture",
        "node",
        "version",
        "completion",
    ] {
        let out = run_with(&[sub, "--help"], &[]);
        assert!(out.status.success());
        let h = stdout(&out);
        assert!(h.contains("Usage: kubectl fivexx"), "{sub}: {h}");
        assert!(h.contains("Examples:"), "{sub} has no examples");
        for flag in [
            "--namespace",
            "--context",
            "--kubeconfig",
            "--request-timeout",
            "--cluster",
            "--user",
        ] {
            assert!(h.contains(flag), "{sub} lacks {flag}");
        }
    }
    let trace = stdout(&run_with(&["trace", "--help"], &[]));
    for flag in ["-A", "--selector", "--output", "--duration", "--capture"] {
        assert!(trace.contains(flag), "trace lacks {flag}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = run_with(&["completion", shell], &[]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("kubectl-fivexx"), "{shell}");
        assert!(stdout(&out).contains("undeploy"), "{shell}");
    }
    let out = run_with(&["version", "--client"], &[]);
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "Client Version: {} (agent protocol {PROTOCOL_VERSION})",
            env!("CARGO_PKG_VERSION")
        )
    );
    let lab = Lab::new("target");
    let out = lab.run(&["trace", "cronjob/x"]);
    assert_fails(
        &out,
        "target kind `cronjob` is not supported",
        "deploy/NAME",
    );
    let out = lab.run(&["trace", "deploy/missing"]);
    assert_fails(
        &out,
        "deployment \"missing\" not found in namespace default",
        "kubectl get deployment -n default",
    );
}

/// `kubectl` finds the plugin on PATH and runs it.
#[test]
fn kubectl_plugin_discovery_finds_and_runs_it() {
    let kubectl = Path::new("/usr/bin/kubectl");
    if !kubectl.is_file() {
        eprintln!("SKIP kubectl_plugin_discovery_finds_and_runs_it: no /usr/bin/kubectl");
        return;
    }
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let list = Command::new(kubectl)
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(&format!("{}", Path::new(BIN).display())),
        "{text}"
    );
    let v = Command::new(kubectl)
        .args(["fivexx", "version", "--client"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout)
        .contains(&format!("Client Version: {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn capture_and_node_sessions_with_a_quiet_agent() {
    let lab = Lab::new("capture");
    let addr = fake_agent(&lab.rt, env!("CARGO_PKG_VERSION"), None);
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    lab.add_pod("web-1", "10.244.0.9");
    let out = lab.run(&["capture", "-f", "x.fxcap"]);
    assert_fails(&out, "capture needs --duration", "--duration");
    let cap = lab.dir.join("quiet.fxcap");
    let out = lab.run(&[
        "capture",
        "-l",
        "app=web",
        "--duration",
        "2s",
        "-f",
        cap.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("tracing namespace default: 1 pod(s)"), "{err}");
    assert!(
        err.contains("capturing: elapsed"),
        "no progress line: {err}"
    );
    assert!(err.contains(&format!("written to {}", cap.display())));
    let explained = lab.run(&["explain", cap.to_str().unwrap(), "-o", "json"]);
    assert!(explained.status.success());
    let v: serde_json::Value = serde_json::from_slice(&explained.stdout).unwrap();
    assert_eq!(v["capture"]["nodes"][0], NODE, "{v}");

    let out = lab.run(&["trace", "-l", "app=web", "--duration", "1s", "-o", "yaml"]);
    assert!(out.status.success());
    let y: serde_yaml::Value = serde_yaml::from_str(stdout(&out).trim_start()).unwrap();
    assert!(y.is_mapping(), "the summary is not a YAML mapping");

    // Cordon the node: `node` shows it, and the session still runs.
    let mut node = lab.store.get_node(NODE).unwrap();
    node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    lab.store.apply_node(node);
    let out = lab.run(&["node", NODE, "--duration", "1s"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(&format!("node/{NODE}: cordoned")), "{text}");
    assert!(
        text.contains("pods: 2 on the node, 0 terminating"),
        "{text}"
    );
    assert!(text.contains("recent evictions: none"), "{text}");
    let out = lab.run(&["node", "no-such-node"]);
    assert_fails(&out, "node \"no-such-node\" not found", "kubectl get nodes");
}

/// A proxy pod that starts while a trace runs (a proxy rollout or
/// scale-up) is peeked at and its log followed, as the ones found at the
/// start are: the agent gets a subscription naming it, and its 502s show.
#[test]
fn a_proxy_pod_started_mid_trace_is_peeked_and_log_followed() {
    let lab = Lab::new("proxy-late");
    let (addr, subs) = fake_agent_recording(&lab.rt, env!("CARGO_PKG_VERSION"), None);
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    lab.add_pod("web-1", "10.244.0.9");
    let log = lab.dir.join("controller.log");
    std::fs::write(&log, "").unwrap();
    lab.store.map_pod_log("ingress-nginx", ANY_POD, log.clone());
    let capture = lab.dir.join("late.fxc");
    let mut child = Command::new(BIN)
        .args(["trace", "-l", "app=web", "--duration", "6s", "--proxy-logs"])
        .arg("--capture")
        .arg(&capture)
        .env("KUBECONFIG", &lab.kubeconfig)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The proxy pod is created once the session has listed the proxies
    // (its "tracing ..." line), however slow the machine.
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let child_err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(child_err)
            .lines()
            .map_while(Result::ok)
        {
            let _ = line_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with("tracing ") {
            break;
        }
    }
    let proxy = lab.store.apply_pod(Pod {
        metadata: ObjectMeta {
            name: Some("ingress-nginx-controller-late".into()),
            namespace: Some("ingress-nginx".into()),
            labels: Some(
                [(
                    "app.kubernetes.io/name".to_string(),
                    "ingress-nginx".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            containers: vec![k8s_openapi::api::core::v1::Container {
                name: "controller".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.244.0.50".into()),
            ..Default::default()
        }),
    });
    let uid = proxy.metadata.uid.clone().unwrap();
    // The 502 is logged once the session has adopted the pod: its stamp is
    // then inside the session, whose start follows the "tracing" line.
    while let Ok(line) = line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with("proxy pod ") {
            break;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::fs::write(
        &log,
        format!(
            "{now:.3} 10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] \"GET / HTTP/1.1\" 502 150 \"-\" \"curl\" 89 0.002 [default-web-80] [] 10.244.0.9:8080 0 0.001 502 7f3b1e4c1a0a4d6e8c1f0e2d3c4b5a69\n"
        ),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let (text, err) = (stdout(&out), err_reader.join().unwrap());
    eprintln!("--- stdout\n{text}--- stderr\n{err}");
    assert!(out.status.success());
    assert!(
        err.contains(&format!(
            "proxy pod ingress-nginx/ingress-nginx-controller-late started on {NODE}: peeking at its HTTP status lines, following its log"
        )),
        "{err}"
    );
    let subs = subs.lock().unwrap().clone();
    let widened = subs
        .iter()
        .find(|f| f.http_pods.contains(&uid))
        .unwrap_or_else(|| panic!("no subscription peeks at the new proxy: {subs:?}"));
    assert_eq!(widened.pod_uids, vec![uid.clone()]);
    assert_eq!(
        widened.ips,
        vec!["10.244.0.50".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        text.contains("proxy_log       ingress-nginx/ingress-nginx-controller-late http=502 client 10.1.0.7 upstream 10.244.0.9:8080"),
        "the new proxy's 502 is not shown: {text}"
    );
    assert!(
        err.contains("proxy logs: 1 line(s) from 1 pod(s), 1 with a 5xx"),
        "{err}"
    );
    // The capture says from when the new proxy was peeked, so `explain`
    // counts its retried failures as the live session did.
    let reader =
        fivexx_core::capture::CaptureReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    let peeks: Vec<_> = reader
        .filter_map(|r| match r.unwrap() {
            fivexx_core::capture::Record::Fact(fivexx_core::Fact::HttpPeek(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(peeks.len(), 1, "{peeks:?}");
    assert_eq!(
        (
            peeks[0].namespace.as_str(),
            peeks[0].pod.as_str(),
            peeks[0].node.as_str()
        ),
        ("ingress-nginx", "ingress-nginx-controller-late", NODE)
    );
    assert_eq!(
        peeks[0].proxy_ip,
        "10.244.0.50".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(
        (peeks[0].at_ns as f64) < now * 1e9,
        "peeked after the 502 was logged"
    );
}

#[test]
fn ctrl_c_during_trace_prints_the_summary() {
    let lab = Lab::new("trace-int");
    let addr = fake_agent(&lab.rt, env!("CARGO_PKG_VERSION"), None);
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    lab.add_pod("web-1", "10.244.0.9");
    let child = Command::new(BIN)
        .args(["trace", "pod/web-1"])
        .env("KUBECONFIG", &lab.kubeconfig)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tracing pod/web-1 in default: 1 pod(s)"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("FAILURES"),
        "no summary: {}",
        stdout(&out)
    );
}
