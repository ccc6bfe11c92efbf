//! The node lab's scenarios, run for real as root: each must show its
//! signature in the ground truth (and, with the agent built, in the kernel
//! events for the affected pod IPs), and leave nothing behind.
//!
//! Not root: every test prints why it skipped.
//!
//! Longer than 600 lines because each scenario's test sits with the one
//! signature check it shares with the others; one test binary links the
//! lab once.

use fivexx_core::event::{Errno, KernelEvent, KernelEventKind, SignalResult, TcpState};
use fivexx_lab::control::store::ClusterStore;
use fivexx_lab::harness::{find_binary, skip_unless_root};
use fivexx_lab::node::clean;
use fivexx_lab::sim::scenario::{self, RunOptions, ScenarioKind, ScenarioParams, ScenarioReport};
use fivexx_lab::sim::timeline::{LabEvent, LabEventKind};
use std::path::PathBuf;

/// The agent, when it has been built; its assertions are skipped (loudly)
/// otherwise.
fn agent_bin() -> Option<PathBuf> {
    let found = find_binary("fivexx-agent");
    if found.is_none() {
        eprintln!("NOTE: fivexx-agent not built (cargo build -p tracer-user) and FIVEXX_AGENT unset: kernel-event assertions skipped");
    }
    found
}

fn run(kind: ScenarioKind, tweak: impl FnOnce(&mut ScenarioParams)) -> ScenarioReport {
    run_with_store(kind, tweak).0
}

/// Runs a scenario on a store the test can inspect afterwards.
fn run_with_store(
    kind: ScenarioKind,
    tweak: impl FnOnce(&mut ScenarioParams),
) -> (ScenarioReport, ClusterStore) {
    let store = ClusterStore::new(scenario::NODE);
    let mut params = ScenarioParams::defaults(kind);
    tweak(&mut params);
    let out_dir = std::env::temp_dir().join("fxlab-test-runs").join(format!(
        "{}-{}",
        kind.name(),
        std::process::id()
    ));
    let opts = RunOptions {
        out_dir,
        lab_exe: PathBuf::from(env!("CARGO_BIN_EXE_fivexx-lab")),
        agent: agent_bin(),
        store: Some(store.clone()),
        api_addr: None,
        lock_held: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = match rt.block_on(scenario::run(&params, &opts)) {
        // A built agent that cannot trace here (no eBPF on this kernel):
        // the lab still runs; only the kernel-event assertions are skipped.
        Err(e) if opts.agent.is_some() && e.to_string().starts_with("fivexx-agent") => {
            eprintln!(
                "NOTE: {e}: kernel-event assertions skipped for {}",
                kind.name()
            );
            let opts = RunOptions {
                agent: None,
                ..opts
            };
            rt.block_on(scenario::run(&params, &opts))
        }
        other => other,
    }
    .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
    eprint!("{}", scenario::render(&report));
    (report, store)
}

fn events_with_reason(store: &ClusterStore, reason: &str) -> Vec<String> {
    store
        .list_events(None)
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.involved_object.name)
        .collect()
}

/// Pods that got a SIGTERM during the run, with their IPs.
fn terminated_ips(r: &ScenarioReport) -> Vec<String> {
    let pods: Vec<&str> = r
        .timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::SigtermSent)
        .filter_map(|e| e.pod.as_deref())
        .collect();
    r.timeline
        .iter()
        .filter(|e| {
            e.kind == LabEventKind::EndpointRemoved
                && e.pod.as_deref().is_some_and(|p| pods.contains(&p))
        })
        .filter_map(|e| e.ip.clone())
        .collect()
}

fn failures_only_from(r: &ScenarioReport, ips: &[String]) {
    for ip in r.affected_ips() {
        assert!(
            ips.contains(&ip),
            "{}: 5xx from {ip}, which was not one of the pods shut down ({ips:?})",
            r.scenario
        );
    }
}

/// Refused connects to the affected IPs: a RST received in SYN_SENT, or
/// error 111 on the socket.
fn refused_connects(r: &ScenarioReport) -> Vec<&KernelEvent> {
    r.agent_events_for_failures()
        .into_iter()
        .filter(|e| {
            (e.kind == KernelEventKind::ReceiveReset && e.tcp_state == Some(TcpState::SynSent))
                || (e.kind == KernelEventKind::SockError && e.errno == Some(Errno::ECONNREFUSED))
        })
        .collect()
}

#[test]
fn rollout_no_prestop_gives_502_from_refused_connects() {
    if skip_unless_root("rollout_no_prestop") {
        return;
    }
    let (r, store) = run_with_store(ScenarioKind::RolloutNoPrestop, |_| {});
    let s = &r.summary;
    // The control plane saw it as a cluster would: a Killing event per old
    // pod, the old pods gone, the slice listing the new ready pods.
    let killed = events_with_reason(&store, "Killing");
    let terminated: Vec<String> = r
        .timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::SigtermSent)
        .filter_map(|e| e.pod.clone())
        .collect();
    assert_eq!(terminated.len(), r.params.replicas as usize);
    for pod in &terminated {
        assert!(killed.contains(pod), "no Killing event for {pod}");
        assert!(
            store.get_pod("shop", pod).is_none(),
            "{pod} still in the store"
        );
    }
    let pods = store.list_pods(Some("shop"));
    assert_eq!(pods.len(), r.params.replicas as usize);
    let slice = store
        .get_endpoint_slice("shop", "web-lab01")
        .expect("EndpointSlice");
    let ready: Vec<String> = slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses.clone())
        .collect();
    let pod_ips: Vec<String> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ready.len(), pod_ips.len());
    assert!(
        ready.iter().all(|ip| pod_ips.contains(ip)),
        "{ready:?} vs {pod_ips:?}"
    );
    assert!(s.s502 > 0, "no 502: {s:?}");
    assert_eq!(s.total_5xx(), s.s502, "only 502s expected: {s:?}");
    assert_eq!(s.client_errors, 0);
    failures_only_from(&r, &terminated_ips(&r));
    if r.agent_events.is_some() {
        assert!(
            !refused_connects(&r).is_empty(),
            "the agent saw no refused connect to {:?}",
            r.affected_ips()
        );
    }
}

#[test]
fn prestop_fixed_gives_zero_5xx() {
    if skip_unless_root("prestop_fixed") {
        return;
    }
    let r = run(ScenarioKind::PrestopFixed, |_| {});
    let s = &r.summary;
    assert!(s.total > 1000, "too little load: {s:?}");
    assert_eq!(
        s.ok, s.total,
        "prestop longer than the lag must give zero failures: {s:?}"
    );
    assert!(
        r.timeline
            .iter()
            .any(|e| e.kind == LabEventKind::SigtermSent),
        "no pod was terminated"
    );
    if r.agent_events.is_some() {
        assert!(refused_connects(&r).is_empty());
    }
}

#[test]
fn ignore_sigterm_gets_sigkill_exactly_at_grace() {
    if skip_unless_root("ignore_sigterm") {
        return;
    }
    let r = run(ScenarioKind::IgnoreSigterm, |_| {});
    let grace_ms = r.params.grace_ms as f64;
    assert!(r.summary.s502 > 0, "no 502: {:?}", r.summary);
    assert_eq!(
        r.sigterm_to_sigkill_ms.len(),
        r.params.replicas as usize,
        "every old pod needs SIGKILL"
    );
    for (pod, ms) in &r.sigterm_to_sigkill_ms {
        assert!(
            (ms - grace_ms).abs() <= 100.0,
            "{pod}: SIGKILL {ms} ms after SIGTERM, grace {grace_ms}"
        );
    }
    if r.agent_events.is_none() {
        return;
    }
    // The kernel's view: SIGTERM ignored by each backend, SIGKILL a grace later.
    let pids: Vec<i32> = r
        .timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::SigtermSent)
        .filter_map(|e| e.pid)
        .collect();
    for pid in pids {
        let sig = |n: i32| {
            r.kernel_events.iter().find(|e| {
                e.kind == KernelEventKind::Signal
                    && e.signal == Some(n)
                    && e.target.as_ref().is_some_and(|t| t.pid == pid)
            })
        };
        let term = sig(15).unwrap_or_else(|| panic!("agent: no SIGTERM to {pid}"));
        assert_eq!(
            term.signal_result,
            Some(SignalResult::Ignored),
            "SIGTERM to {pid} not reported ignored"
        );
        let kill = sig(9).unwrap_or_else(|| panic!("agent: no SIGKILL to {pid}"));
        let ms = (kill.mono_ns - term.mono_ns) as f64 / 1e6;
        assert!(
            (ms - grace_ms).abs() <= 100.0,
            "kernel: SIGKILL {ms} ms after SIGTERM for {pid}"
        );
    }
}

#[test]
fn keepalive_race_gives_502_from_reused_connections() {
    if skip_unless_root("keepalive_race") {
        return;
    }
    let r = run(ScenarioKind::KeepaliveRace, |_| {});
    let s = &r.summary;
    assert!(s.s502 > 0, "no 502: {s:?}");
    assert_eq!(s.total_5xx(), s.s502, "only 502s expected: {s:?}");
    failures_only_from(&r, &terminated_ips(&r));
    // nginx says why: the pooled connection was closed or reset under it,
    // never a refused connect (the backend keeps listening).
    let log = std::fs::read_to_string(r.out_dir.join("nginx-error.log")).unwrap_or_default();
    assert!(
        log.contains("upstream prematurely closed connection")
            || log.contains("Connection reset by peer"),
        "nginx logged no keep-alive failure"
    );
    assert!(
        !log.contains("(111: Connection refused)"),
        "refused connects are a different failure"
    );
    if r.agent_events.is_some() {
        let resets = r
            .agent_events_for_failures()
            .into_iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    KernelEventKind::SendReset | KernelEventKind::ReceiveReset
                )
            })
            .count();
        assert!(
            resets > 0,
            "the agent saw no reset on {:?}",
            r.affected_ips()
        );
    }
}

#[test]
fn drain_gives_502_from_evicted_pods() {
    if skip_unless_root("drain") {
        return;
    }
    let (r, store) = run_with_store(ScenarioKind::Drain, |_| {});
    assert!(r.summary.s502 > 0, "no 502: {:?}", r.summary);
    let node = store.get_node(scenario::NODE).expect("node");
    assert_eq!(
        node.spec.and_then(|s| s.unschedulable),
        Some(true),
        "node not cordoned"
    );
    for p in store.list_pods(Some("shop")) {
        let on = p.spec.and_then(|s| s.node_name);
        assert_eq!(
            on.as_deref(),
            Some(scenario::NODE_2),
            "a pod stayed on the drained node"
        );
    }
    let cordon = r
        .timeline
        .iter()
        .position(|e| e.kind == LabEventKind::NodeCordoned)
        .expect("cordon");
    let evictions: Vec<usize> = r
        .timeline
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == LabEventKind::Evicted)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(evictions.len(), r.params.replicas as usize);
    assert!(
        evictions.iter().all(|i| *i > cordon),
        "evicted before the cordon"
    );
    failures_only_from(&r, &terminated_ips(&r));
    if r.agent_events.is_some() {
        assert!(
            !refused_connects(&r).is_empty(),
            "the agent saw no refused connect"
        );
    }
}

#[test]
fn ip_gone_gives_504_from_connect_timeouts() {
    if skip_unless_root("ip_gone") {
        return;
    }
    let r = run(ScenarioKind::IpGone, |_| {});
    let s = &r.summary;
    assert!(s.s504 > 0, "no 504: {s:?}");
    assert!(s.s504 > s.s502, "connect timeouts should dominate: {s:?}");
    failures_only_from(&r, &terminated_ips(&r));
    // Every 504 is a connect into an IP whose netns was already gone. nginx
    // answers 504 when proxy_connect_timeout runs out, so its connect began
    // that long before the answer: judge that moment, not the client's send
    // time (nginx can pick a request up late on a loaded machine). 200 ms
    // slack for timer granularity.
    let connect_timeout_ns =
        ScenarioParams::defaults(ScenarioKind::IpGone).proxy_connect_timeout_ms * 1_000_000;
    for rec in r.records.iter().filter(|x| x.status == Some(504)) {
        let ip = rec.upstream_ip().expect("504 without upstream");
        let gone = r
            .timeline
            .iter()
            .find(|e| {
                e.kind == LabEventKind::SandboxRemoved && e.ip.as_deref() == Some(ip.as_str())
            })
            .unwrap_or_else(|| panic!("504 from {ip}, whose netns was never removed"));
        let connect_began = rec.done.mono_ns.saturating_sub(connect_timeout_ns);
        assert!(
            connect_began + 200_000_000 >= gone.at.mono_ns,
            "a 504 from {ip} whose connect began before its netns went away"
        );
    }
    if r.agent_events.is_some() {
        let dark = r
            .agent_events_for_failures()
            .into_iter()
            .filter(|e| {
                e.kind == KernelEventKind::SynRetransmit
                    || (e.kind == KernelEventKind::SockError
                        && matches!(e.errno, Some(Errno::ETIMEDOUT | Errno::EHOSTUNREACH)))
                    || (e.kind == KernelEventKind::StateChange
                        && e.tcp_state == Some(TcpState::SynSent)
                        && e.new_state == Some(TcpState::Close))
            })
            .count();
        assert!(
            dark > 0,
            "the agent saw no SYN into the gone IPs {:?}",
            r.affected_ips()
        );
    }
}

#[test]
fn oom_kill_mid_request_gives_502() {
    if skip_unless_root("oom") {
        return;
    }
    let (r, store) = run_with_store(ScenarioKind::Oom, |_| {});
    assert!(r.summary.s502 > 0, "no 502: {:?}", r.summary);
    assert!(
        !events_with_reason(&store, "OOMKilling").is_empty(),
        "no OOMKilling event"
    );
    let oom_status = store.list_pods(Some("shop")).into_iter().find_map(|p| {
        let cs = p.status?.container_statuses?.into_iter().next()?;
        let reason = cs.last_state?.terminated?.reason?;
        Some((cs.restart_count, reason))
    });
    let (restarts, reason) = oom_status.expect("no pod with a terminated last state");
    assert!(restarts >= 1);
    assert_eq!(reason, "OOMKilled");
    let ooms: Vec<_> = r
        .timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::OomKilled)
        .collect();
    assert!(!ooms.is_empty(), "no OOM kill");
    let hog = ooms[0].pod.clone().unwrap();
    let hog_ip = r
        .timeline
        .iter()
        .find(|e| e.pod.as_ref() == Some(&hog) && e.ip.is_some())
        .and_then(|e| e.ip.clone())
        .unwrap();
    assert_eq!(
        r.affected_ips(),
        vec![hog_ip],
        "5xx must come from the OOM-killed pod only"
    );
    if r.agent_events.is_some() {
        let hog_pids: Vec<i32> = r
            .timeline
            .iter()
            .filter(|e| e.kind == LabEventKind::ContainerStarted && e.pod.as_ref() == Some(&hog))
            .filter_map(|e| e.pid)
            .collect();
        let victim = r.kernel_events.iter().any(|e| {
            e.kind == KernelEventKind::OomVictim
                && e.target.as_ref().is_some_and(|t| hog_pids.contains(&t.pid))
        });
        assert!(victim, "the agent saw no oom_victim for {hog_pids:?}");
    }
}

#[test]
fn bad_flags_fail_with_one_clear_line() {
    let exe = env!("CARGO_BIN_EXE_fivexx-lab");
    let out = std::process::Command::new(exe)
        .args(["rollout-no-prestop", "--rate", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'lots' for '--rate"), "{err}");
    let out = std::process::Command::new(exe)
        .args(["no-such-scenario"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(exe)
        .args(["backend", "--behaviour", "sleepy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    if fivexx_lab::is_root() {
        let out = std::process::Command::new(exe)
            .args(["drain", "--rate", "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("--rate must be 1..=2000"), "{err}");
    }
}

/// A lab killed mid-run (SIGKILL, no chance to tidy) is cleaned by
/// `fivexx-lab clean`, and a second clean finds nothing.
#[test]
fn clean_removes_a_crashed_lab_and_is_idempotent() {
    if skip_unless_root("clean_after_crash") {
        return;
    }
    let exe = env!("CARGO_BIN_EXE_fivexx-lab");
    let mut child = std::process::Command::new(exe)
        .args(["rollout-no-prestop", "--out"])
        .arg(std::env::temp_dir().join("fxlab-test-runs/crash"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the lab has pods, then crash it.
    // Generous: on a loaded 2-core machine the lab can take a while to start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while clean::leftovers()
        .iter()
        .filter(|l| l.starts_with("netns"))
        .count()
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lab never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = clean::leftovers();
    assert!(
        left.iter().any(|l| l.starts_with("process")),
        "a crash should leave processes: {left:?}"
    );
    let out = std::process::Command::new(exe)
        .arg("clean")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(clean::leftovers(), Vec::<String>::new());
    let out = std::process::Command::new(exe)
        .arg("clean")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "clean: 0 processes killed, 0 namespaces, 0 links, 0 pod cgroups removed"
    );
}

/// Runs last (tests run in name order on one thread): after every scenario,
/// no lab namespace, link, cgroup or process remains.
#[test]
fn zz_nothing_left_behind() {
    if skip_unless_root("nothing_left_behind") {
        return;
    }
    assert_eq!(clean::leftovers(), Vec::<String>::new());
}

/// With `api_addr`, a real kube-rs client follows the running lab through
/// the fake API server: ready pods with lab IPs, then a terminating pod
/// during the rollout.
#[test]
fn api_server_serves_the_running_lab() {
    use k8s_openapi::api::core::v1::Pod;
    if skip_unless_root("api_server_serves_the_running_lab") {
        return;
    }
    let params = ScenarioParams::defaults(ScenarioKind::PrestopFixed);
    let out_dir = std::env::temp_dir()
        .join("fxlab-test-runs")
        .join(format!("api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        lab_exe: PathBuf::from(env!("CARGO_BIN_EXE_fivexx-lab")),
        agent: None,
        store: None,
        api_addr: Some("127.0.0.1:0".parse().unwrap()),
        lock_held: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let run = tokio::spawn(async move { scenario::run(&params, &opts).await });
        let kubeconfig = out_dir.join("kubeconfig");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while !kubeconfig.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no kubeconfig written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let pods: kube::Api<Pod> = kube::Api::namespaced(client, "shop");
        let (mut saw_ready, mut saw_terminating) = (false, false);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while !(saw_ready && saw_terminating) && tokio::time::Instant::now() < deadline {
            if let Ok(list) = pods.list(&Default::default()).await {
                let ready = list
                    .items
                    .iter()
                    .filter(|p| {
                        let st = p.status.as_ref();
                        st.and_then(|s| s.pod_ip.as_deref())
                            .is_some_and(|ip| ip.starts_with("10.244.0."))
                            && st.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                saw_ready |= ready >= 3;
                saw_terminating |= list
                    .items
                    .iter()
                    .any(|p| p.metadata.deletion_timestamp.is_some());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let report = run.await.unwrap().unwrap();
        assert!(saw_ready, "the API never showed 3 ready pods");
        assert!(saw_terminating, "the API never showed a terminating pod");
        assert_eq!(report.summary.total_5xx(), 0);
    });
}

/// An exec preStop `[sleep 5]` in a distroless image: the runtime finds
/// no `sleep`, the kubelet records FailedPreStopHook with its own message
/// and sends SIGTERM at once (not 5 s later), and the endpoint lag gives
/// 502s as if there were no hook.
#[test]
fn prestop_failed_sends_sigterm_at_once() {
    if skip_unless_root("prestop_failed") {
        return;
    }
    let (r, store) = run_with_store(ScenarioKind::PrestopFailed, |_| {});
    let failed = events_with_reason(&store, "FailedPreStopHook");
    let messages: Vec<String> = store
        .list_events(None)
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedPreStopHook"))
        .filter_map(|e| e.message)
        .collect();
    let terminated: Vec<&LabEvent> = r
        .timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::SigtermSent)
        .collect();
    assert_eq!(terminated.len(), r.params.replicas as usize);
    for t in &terminated {
        let pod = t.pod.as_deref().unwrap();
        assert!(
            failed.iter().any(|f| f == pod),
            "no FailedPreStopHook for {pod}"
        );
        let deleted = r
            .timeline
            .iter()
            .find(|e| e.kind == LabEventKind::DeletionRequested && e.pod.as_deref() == Some(pod))
            .expect("deletion");
        let after_ms = (t.at.wall_ns - deleted.at.wall_ns) / 1_000_000;
        assert!(
            after_ms < 1000,
            "{pod}: SIGTERM {after_ms} ms after deletion; a failed hook holds nothing"
        );
    }
    assert!(
        messages.iter().all(|m| m
            .starts_with("Exec lifecycle hook ([sleep 5]) for Container \"web\"")
            && m.contains("executable file not found in $PATH")),
        "{messages:?}"
    );
    assert!(r.summary.s502 > 0, "no 502: {:?}", r.summary);
}
