//! Debian's containerd and runc, driven as kubelet's CRI calls drive them:
//! a private containerd (own root, state and socket) generates the spec
//! and the RuntimeDefault seccomp profile; runc runs the bundle and execs
//! the probes into it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// Why the test cannot run here, or None.
pub fn missing_runtime() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: runc, containerd and eBPF need root".into());
    }
    for bin in ["runc", "containerd", "ctr", "ip", "ss", "tar"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "{bin} is not installed (Debian packages containerd, runc; run 'make setup')"
            ));
        }
    }
    None
}

/// Runs a command, failing with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out)
}

fn first_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// A containerd daemon of our own, stopped on drop.
pub struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    pub fn start(dir: &Path) -> Result<Containerd> {
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n",
                d = dir.display(),
                s = socket.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let ctd = Containerd { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while ctd.ctr(&["version"]).is_err() {
            ensure!(
                Instant::now() < deadline,
                "containerd did not answer in 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(ctd)
    }

    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "fivexx-ct"])
            .args(args))
    }

    /// The spec containerd generates for a container with exactly `caps`
    /// (all of its default capabilities dropped), its RuntimeDefault seccomp
    /// profile (which allows bpf(2) and perf_event_open(2) only to holders
    /// of CAP_BPF / CAP_PERFMON) and, when asked, a read-only root.
    pub fn generated_spec(&self, rootfs: &Path, caps: &[String], read_only: bool) -> Result<Value> {
        let defaults: Value = serde_json::from_slice(&self.ctr(&["oci", "spec"])?.stdout)?;
        let id = "fivexx-spec";
        let _ = self.ctr(&["containers", "rm", id]);
        let mut args: Vec<String> = vec!["containers".into(), "create".into()];
        args.extend(["--rootfs".into(), "--seccomp".into()]);
        if read_only {
            args.push("--read-only".into());
        }
        for c in defaults["process"]["capabilities"]["bounding"]
            .as_array()
            .context("no default capabilities")?
        {
            args.extend(["--cap-drop".into(), c.as_str().unwrap_or("").to_string()]);
        }
        for c in caps {
            args.extend(["--cap-add".into(), c.clone()]);
        }
        args.extend([rootfs.display().to_string(), id.into(), "/x".into()]);
        self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let info: Value = serde_json::from_slice(&self.ctr(&["containers", "info", id])?.stdout)?;
        self.ctr(&["containers", "rm", id])?;
        let spec = info["Spec"].clone();
        let got = spec["process"]["capabilities"]["bounding"].clone();
        ensure!(
            got == serde_json::json!(caps),
            "containerd made capabilities {got}, not {caps:?}"
        );
        ensure!(spec["linux"]["seccomp"].is_object(), "no seccomp profile");
        Ok(spec)
    }

    /// "containerd 1.6.20~ds1 ...; runc 1.1.5 ...; kernel ...".
    pub fn versions(&self) -> Result<String> {
        let ctd = run(Command::new("containerd").arg("--version"))?;
        let runc = run(Command::new("runc").arg("--version"))?;
        let runc_all = String::from_utf8_lossy(&runc.stdout).replace('\n', ", ");
        let kernel = run(Command::new("uname").arg("-r"))?;
        Ok(format!(
            "{}; {}; kernel {}",
            first_line(&ctd),
            runc_all.trim_end_matches(", "),
            first_line(&kernel)
        ))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: kill on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The OCI archive unpacked: its rootfs and the image config's entrypoint.
pub struct Image {
    pub rootfs: PathBuf,
    pub entrypoint: Vec<String>,
    pub digest: String,
}

impl Image {
    pub fn unpack(archive: &Path, dir: &Path) -> Result<Image> {
        let layout = dir.join("layout");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&layout)?;
        std::fs::create_dir_all(&rootfs)?;
        run(Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout))?;
        let read_json = |digest: &str| -> Result<Value> {
            let hex = digest
                .strip_prefix("sha256:")
                .context("not a sha256 digest")?;
            let path = layout.join("blobs/sha256").join(hex);
            Ok(serde_json::from_slice(&std::fs::read(&path)?)?)
        };
        let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .context("index.json has no manifest")?
            .to_string();
        let manifest = read_json(&digest)?;
        let config = read_json(manifest["config"]["digest"].as_str().unwrap_or(""))?;
        for layer in manifest["layers"].as_array().context("no layers")? {
            let hex = layer["digest"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("sha256:");
            run(Command::new("tar")
                .arg("-xzf")
                .arg(layout.join("blobs/sha256").join(hex))
                .arg("-C")
                .arg(&rootfs))?;
        }
        let entrypoint = serde_json::from_value(config["config"]["Entrypoint"].clone())
            .context("the image config has no Entrypoint")?;
        Ok(Image {
            rootfs,
            entrypoint,
            digest,
        })
    }
}

/// runc with its own state root.
pub struct Runc {
    pub root: PathBuf,
}

impl Runc {
    fn cmd(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.root);
        c
    }

    /// `runc run --detach`: the container keeps the files as its stdio.
    pub fn start(&self, bundle: &Path, id: &str) -> Result<i32> {
        let pid_file = bundle.join("pid");
        run(self
            .cmd()
            .args(["run", "--detach", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdout(std::fs::File::create(bundle.join("stdout"))?)
            .stderr(std::fs::File::create(bundle.join("stderr"))?))?;
        Ok(std::fs::read_to_string(pid_file)?.trim().parse()?)
    }

    /// An exec into the container, as CRI's ExecSync does for a probe.
    pub fn exec(&self, id: &str, argv: &[String]) -> Result<Output> {
        Ok(self
            .cmd()
            .args(["exec", id])
            .args(argv)
            .stdin(Stdio::null())
            .output()?)
    }

    /// SIGTERM, as kubelet stops a container, then up to `grace` for the
    /// init process to exit; its exit code (we are its subreaper, see
    /// `become_subreaper`), or None when it had to be killed.
    pub fn stop(&self, id: &str, pid: i32, grace: Duration) -> Result<Option<i32>> {
        run(self.cmd().args(["kill", id, "TERM"]))?;
        let deadline = Instant::now() + grace;
        let code = loop {
            let mut status = 0;
            // SAFETY: waitpid on a pid we adopted as subreaper; status is a
            // valid out-pointer for the duration of the call.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            }
            ensure!(
                r == 0,
                "waitpid({pid}): {}",
                std::io::Error::last_os_error()
            );
            if Instant::now() > deadline {
                let _ = self.cmd().args(["kill", id, "KILL"]).status();
                bail!("{id} did not stop within {grace:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        run(self.cmd().args(["delete", "--force", id]))?;
        Ok(code)
    }

    /// Removes a container whatever its state (clean-up after a failure).
    pub fn remove(&self, id: &str) {
        let _ = self.cmd().args(["delete", "--force", id]).output();
    }
}

/// Makes orphans (a detached container's init) our children, so that we
/// can read the exit code runc does not keep.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    ensure!(
        r == 0,
        "PR_SET_CHILD_SUBREAPER: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}
