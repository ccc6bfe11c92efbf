//! The agent image under a real container runtime (issue 19): the pod
//! template of deploy/04-daemonset.yaml, parsed, turned into the OCI spec a
//! kubelet on containerd would produce (containerd generates the base spec
//! and its RuntimeDefault seccomp profile), run with Debian's runc.
//!
//! One test, in order: the whole pod (probes, `check --load`, events from
//! the pod's netns, no writes, no port but the pod's loopback, SIGTERM exits
//! 0), then one grant removed at a time, each of which must end in a
//! one-line error or a report naming what is missing.
//!
//! Needs root, containerd, runc and FIVEXX_AGENT_IMAGE (an OCI archive);
//! `make test-image-runtime` builds the image and sets it. Otherwise SKIP.

#[path = "container_runtime/host.rs"]
mod host;
#[path = "container_runtime/pod.rs"]
mod pod;
#[path = "container_runtime/runtime.rs"]
mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fivexx_core::capability::{CapabilityReport, HookState};
use fivexx_core::protocol::AgentMessage;
use fivexx_core::KernelEventKind;
use serde_json::Value;

use host::{PodNetns, PodProcess, Subscriber};
use pod::{Placement, PodTemplate, Removed};
use runtime::{Containerd, Image, Runc};

const AGENT_POD_UID: &str = "5c0b1d1e-0019-4f00-8a00-000000000019";
const PROBE_POD_UID: &str = "7a11ce00-0019-4f00-8a00-0000000000a1";
/// How long the agent gets to load and answer its probe.
const START_LIMIT: Duration = Duration::from_secs(20);

struct Node {
    dir: PathBuf,
    ctd: Containerd,
    runc: Runc,
    image: Image,
    pod: PodTemplate,
    netns: PodNetns,
    node_name: String,
}

impl Node {
    fn set_up(archive: &Path) -> Result<Node> {
        let dir = std::env::temp_dir().join(format!("fivexx-ct-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("podfiles"))?;
        for (f, text) in [
            ("hosts", "127.0.0.1 localhost\n"),
            ("hostname", "fivexx-agent-ct\n"),
            ("resolv.conf", "nameserver 10.96.0.10\n"),
            ("termination-log", ""),
        ] {
            std::fs::write(dir.join("podfiles").join(f), text)?;
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/04-daemonset.yaml");
        let pod = PodTemplate::from_manifest(&manifest)?;
        let image = Image::unpack(archive, &dir.join("image"))?;
        let ctd = Containerd::start(&dir)?;
        let runc = Runc {
            root: dir.join("runc"),
        };
        let netns = PodNetns::create(&std::process::id().to_string())?;
        let node_name = std::fs::read_to_string("/proc/sys/kernel/hostname")?
            .trim()
            .to_string();
        Ok(Node {
            dir,
            ctd,
            runc,
            image,
            pod,
            netns,
            node_name,
        })
    }

    /// Writes the bundle for the pod with `removed` taken away.
    fn bundle(&self, case: &str, removed: Removed) -> Result<PathBuf> {
        let mut caps = self.pod.added_capabilities()?;
        if let Removed::Capability(c) = removed {
            caps.retain(|x| x != c);
        }
        let mut spec = self
            .ctd
            .generated_spec(&self.image.rootfs, &caps, self.pod.read_only_root())?;
        let container_id = format!("{:064x}", 0x19u64 + case.len() as u64);
        let place = Placement {
            pod_uid: AGENT_POD_UID,
            container_id: &container_id,
            node_name: &self.node_name,
            netns: &self.netns.path,
            pod_files: &self.dir.join("podfiles"),
            entrypoint: &self.image.entrypoint,
        };
        pod::apply(&mut spec, &self.pod, &place, removed)?;
        spec["root"]["path"] = Value::String(self.image.rootfs.display().to_string());
        let bundle = self.dir.join(format!("bundle-{case}"));
        std::fs::create_dir_all(&bundle)?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
        Ok(bundle)
    }

    /// Execs the template's probes (kubelet's ExecSync); Ok(outputs) once
    /// all pass.
    fn probes(&self, id: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (name, cmd) in self.pod.probe_commands() {
            let o = self.runc.exec(id, &cmd)?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            ensure!(o.status.success(), "{name} probe failed: {}", text.trim());
            out.push(format!("{name} probe: {}", text.trim()));
        }
        Ok(out)
    }
}

/// How a container with one grant removed answered.
enum Answer {
    /// The agent exited: code and its stderr.
    Exited(Option<i32>, String),
    /// The agent serves: its capability report, as `status` shows it.
    Serving(Box<CapabilityReport>),
}

/// Starts the pod detached and waits until its probe passes, or it exits.
fn start(node: &Node, bundle: &Path, id: &str) -> Result<(i32, Answer)> {
    let pid = node.runc.start(bundle, id)?;
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on the container's init, which we adopted as
        // subreaper; status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            node.runc.remove(id);
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            let stderr = std::fs::read_to_string(bundle.join("stderr"))?;
            return Ok((pid, Answer::Exited(code, stderr)));
        }
        if node.probes(id).is_ok() {
            let report = hello_report(node)?;
            return Ok((pid, Answer::Serving(Box::new(report))));
        }
        if Instant::now() > deadline {
            node.runc.remove(id);
            bail!("{id}: neither serving nor exited after {START_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The capability report a client gets in its hello.
fn hello_report(node: &Node) -> Result<CapabilityReport> {
    let port = node.pod.container_port()?;
    let sub = Subscriber::connect(&node.netns.path, port, host::event_filter(PROBE_POD_UID))?;
    Ok(sub.hello)
}

#[test]
fn daemonset_pod_under_containerd_and_runc() {
    if let Some(why) = runtime::missing_runtime() {
        eprintln!("SKIP: {why}");
        return;
    }
    let Some(archive) = std::env::var_os("FIVEXX_AGENT_IMAGE") else {
        eprintln!("SKIP: FIVEXX_AGENT_IMAGE is not set (`make test-image-runtime` builds the image and sets it)");
        return;
    };
    let started = Instant::now();
    if let Err(e) = run_all(Path::new(&archive)) {
        panic!("{e:#}");
    }
    eprintln!("container runtime test: {:.1} s", started.elapsed().as_secs_f64());
}

fn run_all(archive: &Path) -> Result<()> {
    runtime::become_subreaper()?;
    let node = Node::set_up(archive)?;
    eprintln!("runtimes: {}", node.ctd.versions()?);
    eprintln!("image: {} {}", archive.display(), node.image.digest);
    let types = node.pod.seccomp_types();
    ensure!(
        types.iter().all(|t| t == "RuntimeDefault"),
        "seccomp types {types:?}: only RuntimeDefault is simulated"
    );
    let before = rootfs_tree(&node.image.rootfs)?;
    whole_pod(&node)?;
    let mut outputs = BTreeMap::new();
    for (case, removed) in GRANTS {
        let answer = grant_case(&node, case, removed)?;
        outputs.insert(case, answer);
    }
    let after = rootfs_tree(&node.image.rootfs)?;
    rootfs_unchanged(&before, &after)?;
    eprintln!("\n--- least privilege: one grant removed at a time");
    for (case, line) in &outputs {
        eprintln!("{case:>18}: {line}");
    }
    let _ = std::fs::remove_dir_all(&node.dir);
    Ok(())
}

/// Each grant of the DaemonSet, and how to take it away.
const GRANTS: [(&str, Removed); 8] = [
    ("no-cap-perfmon", Removed::Capability("CAP_PERFMON")),
    ("no-cap-bpf", Removed::Capability("CAP_BPF")),
    ("no-hostpid", Removed::HostPid),
    ("no-tracefs-mount", Removed::Volume("tracefs")),
    ("no-btf-mount", Removed::Volume("btf")),
    ("no-kernel-btf", Removed::KernelBtf),
    ("no-cgroup-mount", Removed::Volume("cgroup")),
    ("no-host-proc", Removed::Volume("host-proc")),
];

/// Runs the pod without one grant; returns the answer as one line.
fn grant_case(node: &Node, case: &str, removed: Removed) -> Result<String> {
    let bundle = node.bundle(case, removed)?;
    let id = format!("fivexx-{case}");
    let (pid, answer) = start(node, &bundle, &id)?;
    let line = match answer {
        Answer::Exited(code, stderr) => {
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            ensure!(
                lines.len() == 1,
                "{case}: exit {code:?} with {} lines of stderr, not one:\n{stderr}",
                lines.len()
            );
            ensure!(code.is_some_and(|c| c != 0), "{case}: exit {code:?}");
            format!("exit {} \"{}\"", code.unwrap_or(-1), lines[0])
        }
        Answer::Serving(report) => {
            let events = match removed {
                Removed::HostPid => Some(signal_case(node, AGENT_POD_UID)),
                _ => None,
            };
            let code = node.runc.stop(&id, pid, Duration::from_secs(10))?;
            ensure!(code == Some(0), "{case}: SIGTERM gave exit {code:?}");
            summary(&report, events)
        }
    };
    Ok(line)
}

/// The report's own words about what is missing.
fn summary(report: &CapabilityReport, events: Option<Result<String>>) -> String {
    let attached = report
        .hooks
        .iter()
        .filter(|h| h.state == HookState::Attached)
        .count();
    let mut s = format!(
        "serving, {attached}/{} hooks attached, btf {}",
        report.hooks.len(),
        report.btf
    );
    if let Some(e) = &report.btf_error {
        s.push_str(&format!(" (btf_error \"{e}\")"));
    }
    for h in report.hooks.iter().filter(|h| h.state != HookState::Attached) {
        s.push_str(&format!(
            "; {} {:?}: {}",
            h.tracepoint,
            h.state,
            h.reason.as_deref().unwrap_or("")
        ));
    }
    if let Some(e) = events {
        match e {
            Ok(ev) => s.push_str(&format!("; host SIGTERM: {ev}")),
            Err(e) => s.push_str(&format!("; host SIGTERM: {e:#}")),
        }
    }
    s
}
