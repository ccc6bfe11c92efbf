//! A real `fivexx-agent serve` behind the agent pod's port-forward, the
//! cluster store the plugin finds after `kubectl fivexx deploy`, and the
//! real plugin run while a lab scenario runs.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::control::store::{ClusterStore, ANY_POD};
use crate::sim::scenario::NODE;

/// A running `fivexx-agent serve` on a loopback port; SIGTERM on drop.
pub struct AgentServe {
    child: Child,
    pub addr: SocketAddr,
}

impl AgentServe {
    /// Starts the agent for `NODE` and waits (up to 60 s) until its probe
    /// answers: every hook attached.
    pub fn start(bin: &Path) -> AgentServe {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(bin)
            .args(["serve", "--listen", &addr.to_string(), "--node", NODE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fivexx-agent serve");
        let agent = AgentServe { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new(bin)
            .args(["probe", "--addr", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "the agent did not start serving");
            std::thread::sleep(Duration::from_millis(200));
        }
        agent
    }
}

impl Drop for AgentServe {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A store as the plugin finds it on a cluster where `kubectl fivexx
/// deploy` ran: the agent pod's port 7450 forwards to `agent`, agents are
/// ready, the ingress pod's `pods/log` is its proxy's access log, and the
/// lab's Deployment `shop/web` exists (the kubelet simulator
/// models its pods, not the Deployment object that `kubectl apply` makes).
pub fn plugin_store(agent: SocketAddr) -> ClusterStore {
    let store = ClusterStore::new(NODE);
    store.apply_deployment(Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        spec: DeploymentSpec {
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    });
    store.map_port_forward("fivexx-system", ANY_POD, 7450, agent);
    store.set_daemon_set_readiness(|_, _| true);
    // The ingress pod's container log (`--proxy-logs`): the real nginx's
    // upstreaminfo access log, or what the runtime read from Envoy's or
    // HAProxy's stdout; each in its proxy pod's namespace.
    for kind in crate::node::proxy::ProxyKind::ALL {
        store.map_pod_log(
            kind.pod_identity().namespace,
            ANY_POD,
            kind.container_log_path(),
        );
    }
    store
}

/// A run of the real plugin alongside a lab scenario.
pub struct PluginRun {
    pub report: crate::sim::scenario::ScenarioReport,
    /// The plugin command's own output.
    pub output: std::process::Output,
    /// The port-forward connections the fake API server accepted while
    /// `deploy --no-wait` and the plugin command ran (the scenario's own
    /// clients open none).
    pub port_forwards: crate::control::apiserver::PortForwardStats,
}

/// Runs `params` in the lab behind the fake API server (store from
/// [`plugin_store`]) and, once the lab's ingress pod exists (the lab runs
/// one scenario at a time: a lock that other suites may hold),
/// `kubectl-fivexx deploy --no-wait` and then `kubectl-fivexx ARGS` with
/// a kubeconfig for that server, while the scenario runs. `out_dir` is
/// created for the scenario's files and the kubeconfig; `lab_exe` is the
/// `fivexx-lab` binary (`env!("CARGO_BIN_EXE_fivexx-lab")` in a test).
pub fn run_plugin_during(
    plugin: &Path,
    agent: &AgentServe,
    params: &crate::sim::scenario::ScenarioParams,
    out_dir: &Path,
    lab_exe: &Path,
    args: &[&str],
) -> PluginRun {
    use crate::control::apiserver::{ApiServer, ApiServerConfig};
    let name = params.kind.name();
    // The lab is this run's from the scenario's start to the plugin's end:
    // another lab started in the plugin's tail would be in its capture
    // (its ingress's start-up probes, at the same addresses).
    let _lock = crate::node::clean::LabLock::acquire(Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{name}: the lab lock: {e}"));
    std::fs::create_dir_all(out_dir).expect("create the run's directory");
    let store = plugin_store(agent.addr);
    let opts = crate::sim::scenario::RunOptions {
        out_dir: out_dir.to_path_buf(),
        lab_exe: lab_exe.to_path_buf(),
        agent: None,
        store: Some(store.clone()),
        // Our own server on the same store: it outlives the scenario, so
        // the plugin ends by its --duration, not by the lab shutting down.
        api_addr: None,
        lock_held: true,
    };
    let kubeconfig = out_dir.join("plugin-kubeconfig");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let config = ApiServerConfig {
            graceful_pod_delete: true,
            ..Default::default()
        };
        let server = ApiServer::start(store.clone(), config)
            .await
            .expect("start the fake API server");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("write the kubeconfig");
        let p = params.clone();
        let run = tokio::spawn(async move { crate::sim::scenario::run(&p, &opts).await });
        let deadline = Instant::now() + Duration::from_secs(600);
        // The ingress pod is the lab's first; with the proxy playing a
        // load balancer outside the cluster there is none, and the
        // Deployment's first pod is.
        let ingress_ns = params.proxy.pod_identity().namespace;
        while store.list_pods(Some(ingress_ns)).is_empty()
            && store.list_pods(Some("shop")).is_empty()
        {
            assert!(Instant::now() < deadline, "{name}: the lab never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let plugin_cmd = |args: &[&str]| {
            let mut c = tokio::process::Command::new(plugin);
            c.args(args)
                .env("KUBECONFIG", &kubeconfig)
                .env("NO_COLOR", "1")
                .kill_on_drop(true);
            c
        };
        let deploy = plugin_cmd(&["deploy", "--no-wait"])
            .output()
            .await
            .expect("run kubectl-fivexx deploy");
        assert!(
            deploy.status.success(),
            "{name}: deploy: {}",
            String::from_utf8_lossy(&deploy.stderr)
        );
        let child = plugin_cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl-fivexx");
        let pid = child.id();
        // Its output is read while it runs: a `trace --events` fills a
        // pipe nobody reads within seconds, and the plugin then stalls
        // on its stdout, reading no more facts.
        let output = tokio::spawn(child.wait_with_output());
        let report = run
            .await
            .expect("the scenario task")
            .unwrap_or_else(|e| panic!("{name}: the scenario failed: {e}"));
        // The scenario is over (load done, proxies stopped, their logs
        // complete): the plugin gets what is still in flight, then a
        // Ctrl-C, as a user ends a trace, rather than idling out the
        // rest of its --duration (an upper bound in case it hangs).
        tokio::time::sleep(PLUGIN_TAIL).await;
        if let (Some(pid), false) = (pid, output.is_finished()) {
            // SAFETY: signalling our own child by pid; it has not been
            // reaped (its waiter has not finished), so the pid is its.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
        }
        let output = output
            .await
            .expect("the plugin's waiter")
            .expect("wait for kubectl-fivexx");
        let port_forwards = server.port_forwards();
        server.shutdown().await;
        PluginRun {
            report,
            output,
            port_forwards,
        }
    })
}

/// How long the plugin runs on after its scenario ended: the kernel
/// events, log lines and API changes of the scenario's last moments reach
/// it through the agent's stream, the log follower and the watches within
/// this (the log follower polls every 25 ms, the agent sends at once).
pub const PLUGIN_TAIL: Duration = Duration::from_secs(2);

/// Whether a plugin run ended by [`run_plugin_during`]'s Ctrl-C, or by
/// itself, without error: `trace` exits 0 with its summary, `capture`
/// exits 130 saying its file is complete.
pub fn ended_cleanly(out: &std::process::Output) -> bool {
    out.status.success()
        || (out.status.code() == Some(130)
            && String::from_utf8_lossy(&out.stderr).contains("the file is complete up to now"))
}

/// One closed burst line and the lines indented under it.
pub struct BurstLine<'a> {
    pub line: &'a str,
    pub count: u64,
    pub fix: Option<&'a str>,
}

/// The burst lines of the trace's stdout: `HH:MM:SS.mmm[–HH:MM:SS.mmm
/// (1.2s)]  74 failed  502×74  cause  workload  pod ... 10.244.0.5  via
/// ...`, each followed by its `    fix:` and `    next:` lines. The
/// `--events` lines start with a full date instead.
pub fn burst_lines(stdout: &str) -> Vec<BurstLine<'_>> {
    let mut out: Vec<BurstLine> = Vec::new();
    for l in stdout.lines() {
        if let Some(fix) = l.strip_prefix("    fix: ") {
            if let Some(b) = out.last_mut() {
                b.fix = Some(fix);
            }
            continue;
        }
        let b = l.as_bytes();
        let clock = b.len() > 12 && b[2] == b':' && b[5] == b':' && b[8] == b'.';
        let count = l
            .split("  ")
            .find_map(|part| part.strip_suffix(" failed")?.parse().ok());
        if let (true, Some(count)) = (clock, count) {
            out.push(BurstLine {
                line: l,
                count,
                fix: None,
            });
        }
    }
    out
}
