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

#[path = "container_runtime/grants.rs"]
mod grants;
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
use fivexx_core::{KernelEvent, KernelEventKind};
use serde_json::Value;

use host::{PodNetns, PodProcess, Subscriber};
use pod::{Placement, PodTemplate, Removed};
use runtime::{Containerd, Image, Runc};

const AGENT_POD_UID: &str = "5c0b1d1e-0019-4f00-8a00-000000000019";
pub(crate) const PROBE_POD_UID: &str = "7a11ce00-0019-4f00-8a00-0000000000a1";
/// How long the agent gets to load and answer its probe.
const START_LIMIT: Duration = Duration::from_secs(20);

pub(crate) struct Node {
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
        host::mount_tracefs()?;
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
    pub(crate) fn bundle(&self, case: &str, removed: &Removed) -> Result<PathBuf> {
        let mut caps = self.pod.added_capabilities()?;
        if let Removed::Capability(c) = removed {
            caps.retain(|x| x != c);
        }
        let mut spec =
            self.ctd
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
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec)?,
        )?;
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
pub(crate) enum Answer {
    /// The agent exited: code and its stderr.
    Exited(Option<i32>, String),
    /// The agent serves: its capability report, as `status` shows it.
    Serving(Box<CapabilityReport>),
}

/// Starts the pod detached and waits until its probe passes, or it exits.
pub(crate) fn start(node: &Node, bundle: &Path, id: &str) -> Result<(i32, Answer)> {
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
    eprintln!(
        "container runtime test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn run_all(archive: &Path) -> Result<()> {
    runtime::become_subreaper()?;
    let node = Node::set_up(archive)?;
    eprintln!("runtimes: {}", node.ctd.versions()?);
    eprintln!("image: {} {}", archive.display(), node.image.digest);
    // containerd takes the archive as it is (what `ctr images import` on a
    // node would do) and names the same manifest digest.
    let imported = node
        .ctd
        .ctr(&["images", "import", &archive.display().to_string()])?;
    let listed = node.ctd.ctr(&["images", "ls", "--quiet"])?;
    let names = String::from_utf8_lossy(&listed.stdout).to_string();
    let ls = node.ctd.ctr(&["images", "ls"])?;
    ensure!(
        String::from_utf8_lossy(&ls.stdout).contains(&node.image.digest),
        "containerd imported {} as {names}",
        String::from_utf8_lossy(&imported.stdout).trim()
    );
    eprintln!("containerd imported it as {}", names.trim());
    let types = node.pod.seccomp_types();
    ensure!(
        types.iter().all(|t| t == "RuntimeDefault"),
        "seccomp types {types:?}: only RuntimeDefault is simulated"
    );
    let before = rootfs_tree(&node.image.rootfs)?;
    whole_pod(&node)?;
    let mut outputs = BTreeMap::new();
    for (case, removed) in grants::of(&node.pod)? {
        let answer = grants::case(&node, &case, &removed)?;
        outputs.insert(case, answer);
    }
    let after = rootfs_tree(&node.image.rootfs)?;
    rootfs_unchanged(&before, &after)?;
    eprintln!("\n--- least privilege: one grant removed at a time");
    for (case, line) in &outputs {
        eprintln!("{case:>18}: {line}");
    }
    if std::env::var_os("FIVEXX_CT_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&node.dir);
    }
    remove_pod_cgroups();
    Ok(())
}

/// The pod with every grant: probes, `check --load`, events seen from the
/// pod's netns, a read-only root, the pod loopback only, SIGTERM exits 0.
fn whole_pod(node: &Node) -> Result<()> {
    let bundle = node.bundle("whole", &Removed::Nothing)?;
    let id = "fivexx-whole";
    let (pid, answer) = start(node, &bundle, id)?;
    let Answer::Serving(report) = answer else {
        let Answer::Exited(code, stderr) = answer else {
            unreachable!()
        };
        bail!("the agent exited ({code:?}) with every grant:\n{stderr}");
    };
    let result = whole_pod_checks(node, id, pid, &report);
    if result.is_err() {
        eprintln!(
            "agent stderr:\n{}",
            std::fs::read_to_string(bundle.join("stderr"))?
        );
        node.runc.remove(id);
        return result;
    }
    let grace = node.pod.spec.termination_grace_period_seconds.unwrap_or(30);
    let code = node
        .runc
        .stop(id, pid, Duration::from_secs(u64::try_from(grace)?))?;
    ensure!(code == Some(0), "SIGTERM: the agent exited {code:?}, not 0");
    eprintln!("SIGTERM (kubelet's stop): exit 0 within {grace} s");
    Ok(())
}

fn whole_pod_checks(node: &Node, id: &str, pid: i32, report: &CapabilityReport) -> Result<()> {
    for line in node.probes(id)? {
        eprintln!("{line}");
    }
    let check = node.runc.exec(
        id,
        &[
            "/fivexx-agent".into(),
            "check".into(),
            "--load".into(),
            "-o".into(),
            "json".into(),
        ],
    )?;
    ensure!(
        check.status.success(),
        "check --load failed: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let checked: CapabilityReport = serde_json::from_slice(&check.stdout)?;
    for r in [&checked, report] {
        let not: Vec<String> = r
            .hooks
            .iter()
            .filter(|h| {
                h.state != HookState::Attached
                    && !on_demand(h.reason.as_deref())
                    && !not_needed(h.reason.as_deref())
            })
            .map(|h| {
                format!(
                    "{} {:?} {}",
                    h.tracepoint,
                    h.state,
                    h.reason.as_deref().unwrap_or("")
                )
            })
            .collect();
        ensure!(r.loaded && not.is_empty(), "hooks not attached: {not:?}");
        ensure!(r.btf, "no BTF: {:?}", r.btf_error);
    }
    eprintln!(
        "check --load in the pod: {} hooks, all attached but the on-demand HTTP peek; btf true",
        checked.hooks.len()
    );
    let events = signal_case(node, true)?;
    ensure!(
        events.signal.pod_uid.as_deref() == Some(PROBE_POD_UID),
        "SIGTERM of pid {} came with pod UID {:?}, not {PROBE_POD_UID}",
        events.victim,
        events.signal.pod_uid
    );
    eprintln!("from the pod's netns (subscribed by pod UID): {events}");
    let idle = grants::idle_case(node)?
        .context("no idle time on a loopback connection closed after 300 ms idle")?;
    let idle_ms = idle.idle_us.unwrap_or(0) / 1000;
    ensure!(
        (250..=400).contains(&idle_ms),
        "a connection closed after 300 ms idle came with {idle_ms} ms"
    );
    eprintln!("idle close: 300 ms idle read as {idle_ms} ms (the host's timer list)");
    let http = grants::http_case(node)?.context("the HTTP peek saw no 503 of the proxy pod")?;
    ensure!(
        http.pod_uid.as_deref() == Some(PROBE_POD_UID),
        "HTTP 503 with pod UID {:?}",
        http.pod_uid
    );
    eprintln!(
        "HTTP peek on a client's request: a 503 status line written by a host process in pod {PROBE_POD_UID}"
    );
    ports_and_root(node, pid)
}

/// A hook the agent leaves out because the kernel reports the same fact
/// another way (`kfree_skb` on 6.10+, where `tcp_send_reset` says
/// NO_SOCKET itself).
fn not_needed(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.starts_with("not needed"))
}

pub(crate) fn on_demand(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.starts_with("HTTP peek off"))
}

/// A client in the pod's netns gets a refused connect made on the host and
/// the SIGTERM of a host process in a kubelet-style cgroup, with its pod UID
/// (subscribed by that UID, as the plugin subscribes). With `by_pod` false
/// the client takes every signal, to see what the agent made of it.
pub(crate) fn signal_case(node: &Node, by_pod: bool) -> Result<HostEvents> {
    let port = node.pod.container_port()?;
    let mut filter = host::event_filter(PROBE_POD_UID);
    if !by_pod {
        filter.pod_uids.clear();
        filter.ips.clear();
    }
    let mut sub = Subscriber::connect(&node.netns.path, port, filter)?;
    let closed = host::refused_connect()?;
    // Without hostPID the agent can lag by seconds (see the report).
    let limit = Duration::from_secs(if by_pod { 5 } else { 30 });
    let connected_at = Instant::now();
    let refused = sub.wait_for("a refused connect", limit, |e| {
        e.kind == KernelEventKind::SockError
            && e.errno == Some(fivexx_core::event::Errno::ECONNREFUSED)
            && e.tuple.is_some_and(|t| t.dport == closed)
    })?;
    let cgroup2 = host::cgroup2_root()?;
    let cid = format!("{:064x}", 0xa1u64);
    let mut sleep = std::process::Command::new("sleep");
    let victim = PodProcess::spawn(&cgroup2, PROBE_POD_UID, &cid, sleep.arg("60"))?;
    let vpid = i32::try_from(victim.child.id())?;
    // SAFETY: kill on the pid of our own child, not yet reaped.
    let killed = unsafe { libc::kill(vpid, libc::SIGTERM) };
    ensure!(killed == 0, "kill: {}", std::io::Error::last_os_error());
    // Not reaped until the event is in: a zombie keeps its cgroup, as a
    // pod's process does while kubelet's runtime has not reaped it.
    let killed_at = Instant::now();
    let refused_after = connected_at.elapsed();
    let signal = sub.wait_for("the SIGTERM", limit, |e| {
        e.kind == KernelEventKind::Signal
            && e.signal == Some(15)
            && e.target.as_ref().is_some_and(|t| t.pid == vpid)
    })?;
    eprintln!(
        "  (events after {refused_after:.1?} and {:.1?})",
        killed_at.elapsed()
    );
    Ok(HostEvents {
        closed,
        refused,
        signal,
        victim: vpid,
    })
}

pub(crate) struct HostEvents {
    closed: u16,
    refused: KernelEvent,
    signal: KernelEvent,
    victim: i32,
}

impl std::fmt::Display for HostEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self.signal.target.as_ref();
        write!(
            f,
            "refused connect to 127.0.0.1:{} (sock_error errno 111); SIGTERM of host pid {} ({}) with pod UID {:?}, container {:?}",
            self.closed,
            target.map_or(0, |t| t.pid),
            target.map_or("", |t| t.comm.as_str()),
            self.signal.pod_uid,
            self.signal.container_id,
        )?;
        write!(
            f,
            "; the connect's sock_error: errno {:?}",
            self.refused.errno
        )
    }
}

/// Only the pod's loopback listens; the root is mounted read-only.
fn ports_and_root(node: &Node, pid: i32) -> Result<()> {
    let port = node.pod.container_port()?;
    let listeners = node.netns.listeners()?;
    let want = format!("127.0.0.1:{port}");
    ensure!(
        !listeners.is_empty() && listeners.iter().all(|l| l.split(' ').any(|f| f == want)),
        "listeners in the pod netns: {listeners:?}, want only {want}"
    );
    let host = runtime::run(std::process::Command::new("ss").args(["-Hltnup"]))?;
    let host = String::from_utf8_lossy(&host.stdout);
    let on_host: Vec<&str> = host
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .collect();
    ensure!(
        on_host.is_empty(),
        "the agent listens in the host netns: {on_host:?}"
    );
    eprintln!("listening: {listeners:?} in the pod netns, nothing in the host netns");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    let root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .context("no / in the agent's mountinfo")?;
    let opts = root.split(' ').nth(5).unwrap_or("");
    ensure!(
        opts.split(',').any(|o| o == "ro"),
        "root mounted {opts}: {root}"
    );
    eprintln!("root filesystem: mounted {opts}");
    read_only_mounts(&node.pod, &mountinfo)
}

/// Every mount at or below a readOnly volume's mountPath is read-only in
/// the container: runc's plain "ro" on an rbind leaves submounts (the
/// cgroup hierarchies below /sys/fs/cgroup) writable.
fn read_only_mounts(pod: &PodTemplate, mountinfo: &str) -> Result<()> {
    // The last mount on a path is the visible one: the runtime's own
    // cgroup tmpfs lies under the hostPath bind of /sys/fs/cgroup.
    let mut top: BTreeMap<&str, &str> = BTreeMap::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if let (Some(path), Some(opts)) = (f.get(4), f.get(5)) {
            top.insert(path, opts);
        }
    }
    let mut checked = 0;
    for m in pod.host_mounts()?.iter().filter(|m| m.read_only) {
        let below = |p: &str| p == m.dst || p.starts_with(&format!("{}/", m.dst));
        let rw: Vec<String> = top
            .iter()
            .filter(|(p, _)| below(p))
            .filter(|(_, o)| {
                checked += 1;
                !o.split(',').any(|o| o == "ro")
            })
            .map(|(p, o)| format!("{p} {o}"))
            .collect();
        ensure!(
            rw.is_empty(),
            "volume {} is readOnly but these mounts are writable in the container (recursiveReadOnly?): {rw:?}",
            m.name
        );
    }
    eprintln!(
        "readOnly volumes: all {checked} mounts at or below them read-only (recursiveReadOnly as \
         containerd >= 2.0 applies it; Debian's containerd 1.6 falls back to a top-only ro)"
    );
    Ok(())
}

/// runc removes the container's cgroups, not the kubelet-style parents it
/// created in every hierarchy; empty ones go (rmdir fails on the others).
fn remove_pod_cgroups() {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let kubepods = h.path().join("kubepods");
        for dir in [
            kubepods.join(format!("burstable/pod{AGENT_POD_UID}")),
            kubepods.join("burstable"),
            kubepods.join("besteffort"),
            kubepods,
        ] {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Path -> (is a file, size, checksum) of every entry under the rootfs.
fn rootfs_tree(root: &Path) -> Result<Tree> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let rel = entry.path().strip_prefix(root)?.to_path_buf();
            let sum = if meta.is_file() {
                std::fs::read(entry.path())?.iter().fold(0u64, |h, b| {
                    h.wrapping_mul(1_099_511_628_211)
                        .wrapping_add(u64::from(*b))
                })
            } else {
                0
            };
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.insert(rel, (meta.is_file(), meta.len(), sum));
        }
    }
    Ok(out)
}

type Tree = BTreeMap<PathBuf, (bool, u64, u64)>;

/// Nothing changed but the empty mount points runc creates (as in a
/// snapshot's upper dir) before it makes the root read-only.
fn rootfs_unchanged(before: &Tree, after: &Tree) -> Result<()> {
    for (path, was) in before {
        ensure!(
            after.get(path) == Some(was),
            "{} changed in the rootfs",
            path.display()
        );
    }
    let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    for p in &added {
        let (is_file, size, _) = after[*p];
        ensure!(
            !is_file || size == 0,
            "/{} written ({size} bytes)",
            p.display()
        );
    }
    eprintln!(
        "rootfs: image files unchanged; only empty mount points added: {}",
        added
            .iter()
            .map(|p| format!("/{}", p.display()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
