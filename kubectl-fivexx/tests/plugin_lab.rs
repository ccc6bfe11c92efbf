//! End-to-end: the real `kubectl-fivexx` binary against the lab's fake
//! control plane (real HTTP, real kube-rs on both sides, port-forward over
//! WebSocket to a real local port), with a kubeconfig, as a user runs it.
//!
//! Tests that need the real eBPF agent (root) say why they skip otherwise.
//! Agents that misbehave on purpose (a newer version, dying mid-trace) are
//! small in-test servers speaking the real wire protocol (`support/`).
//!
//! Longer than our ~600-line guide: it is one test per user-visible
//! behaviour (install, errors, sessions, replay), each a short script of
//! plugin runs; the shared machinery is in `support/`, and splitting the
//! scripts further would only scatter the one end-to-end suite.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fivexx_core::protocol::{ClientMessage, StreamFilter, PROTOCOL_VERSION};
use fivexx_lab::control::store::{Kind, ANY_POD};
use fivexx_lab::harness::skip_unless_root;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use support::{
    assert_fails, fake_agent, fake_agent_of_protocol, fake_agent_recording, kernel_release,
    run_with, stderr, stdout, Lab, RealAgent, Running, BIN, NODE,
};
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
    // An agent of the same version speaking another protocol is refused
    // by the session's one stream just the same.
    lab.route_agents(fake_agent_of_protocol(&lab.rt, PROTOCOL_VERSION + 1));
    let out = lab.run(&["trace", "--duration", "2s"]);
    let theirs = format!("on node {NODE} is protocol {}", PROTOCOL_VERSION + 1);
    assert_fails(&out, &theirs, "redeploy the agent");
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
    let cap = lab.dir.join("dies.fxc");
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
    // The live summary and the capture's replay mark where the node's
    // facts stop, at the moment the stream ended.
    let marked = "WARNING   node lab-node-1: its agent's stream ended at";
    assert!(stdout(&out).contains(marked), "{}", stdout(&out));
    let table = lab.run(&["explain", cap.to_str().unwrap()]);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(stdout(&table).contains(marked), "{}", stdout(&table));
    assert!(!stdout(&table).contains("INCOMPLETE"), "{}", stdout(&table));
    let explained = lab.run(&["explain", cap.to_str().unwrap(), "-o", "json"]);
    assert!(explained.status.success());
    let v: serde_json::Value = serde_json::from_slice(&explained.stdout).unwrap();
    let gone = &v["capture"]["agents_gone"];
    assert_eq!(gone.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(gone[0]["node"], "lab-node-1");
    assert!(gone[0]["at_ns"].as_i64().unwrap() > v["capture"]["start_ns"].as_i64().unwrap());
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
    for flag in [
        "-A",
        "--selector",
        "--output",
        "--duration",
        "--capture",
        "--events",
    ] {
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
    let out = lab.run(&["capture", "-f", "x.fxc"]);
    assert_fails(&out, "capture needs --duration", "--duration");
    let cap = lab.dir.join("quiet.fxc");
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

    let html = lab.dir.join("quiet.html");
    let out = lab.run(&[
        "trace",
        "-l",
        "app=web",
        "--duration",
        "1s",
        "-o",
        "yaml",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let y: serde_yaml::Value = serde_yaml::from_str(stdout(&out).trim_start()).unwrap();
    assert!(y.is_mapping(), "the summary is not a YAML mapping");
    let page = std::fs::read_to_string(&html).expect("the --html page");
    assert!(page.contains("<html"), "not an HTML page: {page:.200}");
    let nowhere = lab.dir.join("no-such-dir").join("r.html");
    let out = lab.run(&[
        "trace",
        "-l",
        "app=web",
        "--duration",
        "1s",
        "--html",
        nowhere.to_str().unwrap(),
    ]);
    assert_fails(&out, "cannot write", "check the path");

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
/// start are: the node's one stream is widened to it, and its 502s show.
#[test]
fn a_proxy_pod_started_mid_trace_is_peeked_and_log_followed() {
    let lab = Lab::new("proxy-late");
    let (addr, received) = fake_agent_recording(&lab.rt, env!("CARGO_PKG_VERSION"), None);
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    lab.add_pod("web-1", "10.244.0.9");
    let log = lab.dir.join("controller.log");
    std::fs::write(&log, "").unwrap();
    lab.store.map_pod_log("ingress-nginx", ANY_POD, log.clone());
    let capture = lab.dir.join("late.fxc");
    let capture_arg = capture.to_str().unwrap();
    let trace = Running::start(
        &lab,
        &[
            "trace",
            "-l",
            "app=web",
            "--duration",
            "6s",
            "--proxy-logs",
            "--events",
            "--capture",
            capture_arg,
        ],
    );
    // The proxy pod is created once the session has listed the proxies
    // (its "tracing ..." line), however slow the machine.
    trace.wait_for("tracing ");
    let proxy = lab.store.apply_pod(late_proxy_pod());
    let uid = proxy.metadata.uid.clone().unwrap();
    // The 502 is logged once the session has adopted the pod: its stamp is
    // then inside the session, whose start follows the "tracing" line.
    trace.wait_for("proxy pod ");
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
    // A workload pod scheduled mid-trace widens the same stream too.
    let web2 = lab.add_pod("web-2", "10.244.0.10");
    let (ok, text, err) = trace.finish();
    assert!(ok);
    assert!(
        err.contains(&format!(
            "proxy pod ingress-nginx/ingress-nginx-controller-late started on {NODE}: peeking at its HTTP status lines, following its log"
        )),
        "{err}"
    );
    let widened = one_stream_widened(&received.connections());
    assert!(
        widened.http_pods.contains(&uid),
        "the proxy is not peeked: {widened:?}"
    );
    let web2_uid = web2.metadata.uid.clone().unwrap();
    for u in [&uid, &web2_uid] {
        assert!(widened.pod_uids.contains(u), "{u} not added: {widened:?}");
    }
    for ip in ["10.244.0.50", "10.244.0.10"] {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert!(widened.ips.contains(&ip), "{ip} not added: {widened:?}");
    }
    assert!(
        text.contains("proxy_log       ingress-nginx/ingress-nginx-controller-late http=502 client 10.1.0.7 upstream 10.244.0.9:8080"),
        "the new proxy's 502 is not shown: {text}"
    );
    // Its failed request is one burst, printed once the session ends.
    assert!(
        text.lines().any(|l| l.contains("1 failed  502×1")),
        "no burst line for the new proxy's 502: {text}"
    );
    assert!(
        err.contains("proxy logs: 1 line(s) from 1 pod(s), 1 with a 5xx"),
        "{err}"
    );
    assert_peeked_from_before(&capture, now);
}

/// A pod scheduled mid-trace on a node the session had no stream to
/// gives that node its first and only stream, subscribed with the whole
/// filter (the pods known before and the new one); the first node's
/// stream is widened in place.
#[test]
fn a_node_new_to_the_session_gets_its_one_stream_then() {
    let lab = Lab::new("second-node");
    let mut second = lab.store.get_node(NODE).unwrap();
    second.metadata.name = Some("lab-node-2".into());
    second.metadata.uid = None;
    second.metadata.resource_version = None;
    lab.store.apply_node(second);
    let (addr, received) = fake_agent_recording(&lab.rt, env!("CARGO_PKG_VERSION"), None);
    lab.route_agents(addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    let web1 = lab.add_pod("web-1", "10.244.0.9");
    let trace = Running::start(&lab, &["trace", "-l", "app=web", "--duration", "4s"]);
    trace.wait_for("tracing ");
    let web3 = lab.add_pod_on("lab-node-2", "web-3", "10.244.1.3");
    let (ok, _, _) = trace.finish();
    assert!(ok);
    let conns = received.connections();
    assert_eq!(conns.len(), 2, "one stream per node: {conns:?}");
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap();
    let widened = one_stream_widened(&conns[..1]);
    assert_eq!(widened.pod_uids, vec![uid(&web3)], "{conns:?}");
    let Some(ClientMessage::Subscribe { filter, .. }) = conns[1].first() else {
        panic!("the new node's stream did not subscribe: {conns:?}");
    };
    let mut want = vec![uid(&web1), uid(&web3)];
    let mut got = filter.pod_uids.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the new node's filter lacks a pod: {filter:?}");
    assert_eq!(conns[1].len(), 1, "nothing new after it: {conns:?}");
}

/// The late ingress-nginx controller pod of the mid-trace proxy test.
fn late_proxy_pod() -> Pod {
    Pod {
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
    }
}

/// One session, one node: exactly one stream, opened with one
/// `Subscribe`, and every pod that appeared later arrived as an `Update`
/// on it (none narrows). Returns the sum of the updates.
fn one_stream_widened(connections: &[Vec<ClientMessage>]) -> StreamFilter {
    assert_eq!(connections.len(), 1, "one stream per node: {connections:?}");
    let messages = &connections[0];
    assert!(
        matches!(messages.first(), Some(ClientMessage::Subscribe { .. })),
        "{messages:?}"
    );
    let mut widened = StreamFilter::default();
    for m in &messages[1..] {
        match m {
            ClientMessage::Update { add, remove } => {
                assert_eq!(remove, &StreamFilter::default(), "{messages:?}");
                widened.update(add, remove);
            }
            other => panic!("a second Subscribe on the stream: {other:?}"),
        }
    }
    widened
}

/// The capture says from when the new proxy was peeked (before `logged`,
/// the 502's stamp), so `explain` counts its retried failures as the live
/// session did.
fn assert_peeked_from_before(capture: &Path, logged: f64) {
    let reader =
        fivexx_core::capture::CaptureReader::new(std::fs::File::open(capture).unwrap()).unwrap();
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
        (peeks[0].at_ns as f64) < logged * 1e9,
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

/// A live session and the replay of its capture agree: `trace --capture
/// -o json` with the real agent, real refused connects to a traced pod's
/// address, then `explain FILE -o json` with no flags gives the same
/// verdicts, totals, episodes and workloads, made with the settings the
/// session recorded.
#[test]
fn a_trace_and_the_explain_of_its_capture_agree() {
    if skip_unless_root("a_trace_and_the_explain_of_its_capture_agree") {
        return;
    }
    let lab = Lab::new("replay");
    let agent = RealAgent::start();
    lab.route_agents(agent.addr);
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    // A loopback address of its own: the agent sees the refused connects
    // to it, and nothing else of the machine's loopback traffic matches.
    lab.add_pod("web-1", "127.0.0.2");
    let capture = lab.dir.join("replay.fxc");
    let capture_arg = capture.to_str().unwrap();
    let trace = Running::start(
        &lab,
        &[
            "trace",
            "-l",
            "app=web",
            "--duration",
            "6s",
            "--lookahead",
            "5s",
            "--skew",
            "1s",
            "--capture",
            capture_arg,
            "-o",
            "json",
        ],
    );
    trace.wait_for("tracing ");
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed); // nothing listens there now
    for _ in 0..3 {
        let refused = std::net::TcpStream::connect(("127.0.0.2", port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, text, _) = trace.finish();
    assert!(ok);
    // The summary follows the live lines, after an empty line.
    let json = text
        .find("\n{")
        .map(|i| &text[i + 1..])
        .unwrap_or_else(|| panic!("no JSON summary: {text}"));
    let live: serde_json::Value = serde_json::from_str(json).unwrap();
    let out = lab.run(&["explain", capture_arg, "-o", "json"]);
    assert!(out.status.success());
    let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verdicts = live["verdicts"].as_array().unwrap();
    assert!(!verdicts.is_empty(), "no verdict: {live}");
    assert!(
        verdicts
            .iter()
            .all(|v| v["failure"]["tuple"]["daddr"] == "127.0.0.2"),
        "{live}"
    );
    for key in ["verdicts", "totals", "episodes", "workloads"] {
        assert_eq!(live[key], replayed[key], "{key} differ");
    }
    let settings = &replayed["settings"];
    assert_eq!(settings["lookahead_from"], "recorded", "{settings}");
    assert_eq!(settings["skew_from"], "recorded", "{settings}");
    assert_eq!(settings["lookahead_ns"].as_i64(), Some(5_000_000_000));
    assert_eq!(settings["skew_ns"].as_i64(), Some(1_000_000_000));
    assert_eq!(&live["settings"], settings, "the live report's settings");
    let table = stdout(&lab.run(&["explain", capture_arg]));
    assert!(
        table.contains("SETTINGS  lookahead 5.0s (recorded), skew 1.0s (recorded)"),
        "{table}"
    );
}

/// A node on Linux 5.10 (Amazon Linux 2) charges BPF maps to
/// RLIMIT_MEMLOCK: `deploy` asks the nodes and adds CAP_SYS_RESOURCE to the
/// agent, saying which node needs it; a cluster of new kernels gets only
/// BPF and PERFMON.
#[test]
fn deploy_adds_sys_resource_only_for_a_node_before_5_11() {
    let caps = |lab: &Lab| -> Vec<String> {
        let ds = lab
            .store
            .get(Kind::DaemonSet, "fivexx-system", "fivexx-agent")
            .expect("the DaemonSet");
        ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect()
    };
    let lab = Lab::new("caps-new");
    assert!(lab.run(&["deploy", "--no-wait"]).status.success());
    assert_eq!(caps(&lab), ["BPF", "PERFMON"]);

    let lab = Lab::new("caps-old");
    let mut old = lab.store.get_node(NODE).unwrap();
    old.metadata.name = Some("al2-node".into());
    old.metadata.uid = None;
    old.metadata.resource_version = None;
    if let Some(info) = old.status.as_mut().and_then(|s| s.node_info.as_mut()) {
        info.kernel_version = "5.10.0-46-cloud-amd64".into();
    }
    lab.store.apply_node(old);
    let out = lab.run(&["deploy", "--no-wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node al2-node runs kernel 5.10.0-46-cloud-amd64: adding CAP_SYS_RESOURCE"),
        "{err}"
    );
    assert_eq!(caps(&lab), ["BPF", "PERFMON", "SYS_RESOURCE"]);
}
