//! The real `kubectl-fivexx trace deploy/web` during the lab's
//! `rollout-no-prestop`: the lab serves the running scenario through its
//! fake API server, the agent DaemonSet pod's port-forward reaches a real
//! `fivexx-agent serve` (eBPF, root), and the plugin must print the kernel
//! facts and the endpoint-lag verdicts for the pods that served 502s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fivexx_lab::apiserver::{ApiServer, ApiServerConfig};
use fivexx_lab::harness::{plugin_and_agent, plugin_store, AgentServe};
use fivexx_lab::scenario::{self, RunOptions, ScenarioKind, ScenarioParams};

#[test]
fn plugin_trace_explains_rollout_no_prestop() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIP plugin_trace_explains_rollout_no_prestop: the lab and the eBPF agent need root"
        );
        return;
    }
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let store = plugin_store(agent.addr);
    let out_dir = std::env::temp_dir().join(format!("fxlab-plugin-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let params = ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop);
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        lab_exe: PathBuf::from(env!("CARGO_BIN_EXE_fivexx-lab")),
        agent: None,
        store: Some(store.clone()),
        // Our own server on the same store: it outlives the scenario, so
        // the trace ends by its --duration, not by the lab shutting down.
        api_addr: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (report, trace) = rt.block_on(async move {
        let config = ApiServerConfig {
            graceful_pod_delete: true,
            ..Default::default()
        };
        let server = ApiServer::start(store.clone(), config).await.unwrap();
        std::fs::create_dir_all(&out_dir).unwrap();
        let kubeconfig = out_dir.join("plugin-kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let run = tokio::spawn(async move { scenario::run(&params, &opts).await });
        // The lab runs one scenario at a time (a lock that other suites
        // may hold): start tracing once the lab's ingress pod exists.
        let deadline = Instant::now() + Duration::from_secs(600);
        while store.list_pods(Some("ingress-nginx")).is_empty() {
            assert!(Instant::now() < deadline, "the lab never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let plugin_cmd = |args: &[&str]| {
            let mut c = tokio::process::Command::new(&plugin);
            c.args(args)
                .env("KUBECONFIG", &kubeconfig)
                .env("NO_COLOR", "1")
                .kill_on_drop(true);
            c
        };
        let deploy = plugin_cmd(&["deploy", "--no-wait"]).output().await.unwrap();
        assert!(
            deploy.status.success(),
            "{}",
            String::from_utf8_lossy(&deploy.stderr)
        );
        let trace = plugin_cmd(&[
            "trace",
            "deploy/web",
            "-n",
            "shop",
            "--duration",
            "14s",
            "--lookahead",
            "3s",
        ])
        .output()
        .await
        .unwrap();
        let report = run.await.unwrap().unwrap();
        server.shutdown().await;
        (report, trace)
    });
    let stdout = String::from_utf8_lossy(&trace.stdout);
    let stderr = String::from_utf8_lossy(&trace.stderr);
    eprintln!("--- trace stdout\n{stdout}\n--- trace stderr\n{stderr}");
    assert!(trace.status.success(), "trace failed");
    assert!(
        report.summary.total_5xx() > 0,
        "the scenario produced no 5xx"
    );
    let affected = report.affected_ips();
    assert!(!affected.is_empty());
    // Kernel facts about the affected pods, one per line.
    let kernel_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            affected.iter().any(|ip| l.contains(&format!("{ip}:")))
                && !l.trim_start().starts_with("=>")
        })
        .collect();
    assert!(
        !kernel_lines.is_empty(),
        "no kernel fact about {affected:?}"
    );
    // Endpoint-lag verdicts for an affected pod, inline.
    let verdicts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("=>") && l.contains("endpoint lag"))
        .filter(|l| affected.iter().any(|ip| l.contains(&format!("to {ip} "))))
        .collect();
    assert!(
        !verdicts.is_empty(),
        "no endpoint-lag verdict for {affected:?}"
    );
    // Their fix quotes the lag this lab was configured with (1 s), within
    // 30% + 0.5 s: "... routing to terminating pods for p99 1.1 s over ...".
    let configured =
        ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop).endpoint_lag_ms as f64 / 1000.0;
    for l in &verdicts {
        let lag: f64 = l
            .split(" p99 ")
            .nth(1)
            .and_then(|r| r.split(" s").next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no measured lag in {l}"));
        assert!(
            (lag - configured).abs() <= configured * 0.3 + 0.5,
            "quoted lag {lag} s, configured {configured} s: {l}"
        );
    }
}
