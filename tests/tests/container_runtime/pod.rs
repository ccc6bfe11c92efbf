//! The DaemonSet's pod template, turned into the OCI runtime spec a kubelet
//! on containerd (CRI, cgroupfs driver) would hand to runc.
//!
//! The base spec and the seccomp profile come from containerd itself
//! (`ctr containers create --seccomp`, with exactly the pod's capabilities,
//! since containerd's RuntimeDefault profile depends on them); this module
//! only applies what the CRI plugin adds from the pod: namespaces, args and
//! env, the cgroup mount, the kubelet's files, the hostPath volumes and the
//! cgroup path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::{json, Value};

/// One grant of the DaemonSet taken away, or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    Nothing,
    /// An added capability, as CAP_NAME.
    Capability(String),
    HostPid,
    /// A volume mount: the volume's name and its mountPath.
    Volume(String, String),
    /// Not a grant: BTF hidden as on a kernel built without it (the
    /// container's own sysfs shows the host's BTF whatever the mounts).
    KernelBtf,
}

/// The parsed template: its pod spec and its one container.
pub struct PodTemplate {
    pub spec: PodSpec,
    pub container: Container,
}

impl PodTemplate {
    pub fn from_manifest(path: &Path) -> Result<PodTemplate> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let ds: DaemonSet = serde_yaml::from_str(&text)
            .with_context(|| format!("parsing {} as a DaemonSet", path.display()))?;
        let spec = ds
            .spec
            .template
            .spec
            .context("the DaemonSet has no pod template spec")?;
        ensure!(
            spec.containers.len() == 1 && spec.init_containers.is_none(),
            "expected one container"
        );
        let container = spec.containers[0].clone();
        Ok(PodTemplate { spec, container })
    }

    /// `add` of the container's securityContext, as CAP_ names.
    pub fn added_capabilities(&self) -> Result<Vec<String>> {
        let caps = self
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .context("the container has no capabilities")?;
        let drop = caps.drop.clone().unwrap_or_default();
        ensure!(drop == ["ALL"], "capabilities.drop is {drop:?}, not [ALL]");
        Ok(caps
            .add
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|c| format!("CAP_{c}"))
            .collect())
    }

    pub fn read_only_root(&self) -> bool {
        self.container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false)
    }

    pub fn host_pid(&self) -> bool {
        self.spec.host_pid.unwrap_or(false)
    }

    /// The probe commands kubelet execs (liveness, readiness).
    pub fn probe_commands(&self) -> Vec<(&'static str, Vec<String>)> {
        let c = &self.container;
        [
            ("liveness", &c.liveness_probe),
            ("readiness", &c.readiness_probe),
        ]
        .into_iter()
        .filter_map(|(n, p)| {
            let cmd = p.as_ref()?.exec.as_ref()?.command.clone()?;
            Some((n, cmd))
        })
        .collect()
    }

    /// The port the container declares (the agent's listener).
    pub fn container_port(&self) -> Result<u16> {
        let port = self
            .container
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .context("no containerPort")?
            .container_port;
        Ok(u16::try_from(port)?)
    }

    /// Every seccomp type the pod or the container names.
    pub fn seccomp_types(&self) -> BTreeSet<String> {
        let pod = self
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        let ctr = self
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        pod.into_iter()
            .chain(ctr)
            .map(|p| p.type_.clone())
            .collect()
    }

    /// Each volumeMount, after kubelet's hostPath `type: Directory` check.
    pub fn host_mounts(&self) -> Result<Vec<HostMount>> {
        let volumes = self.spec.volumes.clone().unwrap_or_default();
        let mut out = Vec::new();
        for m in self.container.volume_mounts.clone().unwrap_or_default() {
            let v = volumes
                .iter()
                .find(|v| v.name == m.name)
                .with_context(|| format!("volumeMount {} has no volume", m.name))?;
            let Some(hp) = &v.host_path else {
                bail!("volume {} is not a hostPath", v.name);
            };
            let host = PathBuf::from(&hp.path);
            if hp.type_.as_deref() == Some("Directory") && !host.is_dir() {
                bail!("hostPath {} (type Directory) is not a directory", hp.path);
            }
            if hp.type_.as_deref() == Some("File") && !host.is_file() {
                bail!("hostPath {} (type File) is not a file", hp.path);
            }
            let read_only = m.read_only.unwrap_or(false);
            let rro = m.recursive_read_only.as_deref();
            out.push(HostMount {
                name: m.name,
                host,
                dst: m.mount_path,
                read_only,
                recursive: read_only && matches!(rro, Some("Enabled" | "IfPossible")),
            });
        }
        Ok(out)
    }
}

/// A hostPath volumeMount of the container.
pub struct HostMount {
    pub name: String,
    pub host: PathBuf,
    pub dst: String,
    pub read_only: bool,
    /// `recursiveReadOnly: Enabled` or `IfPossible` (Kubernetes >= 1.30).
    pub recursive: bool,
}

/// What the kubelet and the CRI plugin decide outside the template.
pub struct Placement<'a> {
    pub pod_uid: &'a str,
    pub container_id: &'a str,
    pub node_name: &'a str,
    pub netns: &'a Path,
    /// Host files kubelet and the sandbox provide: /etc/hosts,
    /// /etc/hostname, /etc/resolv.conf, /dev/termination-log.
    pub pod_files: &'a Path,
    pub entrypoint: &'a [String],
}

/// Applies the template to containerd's generated spec (which already
/// carries the capabilities, read-only root and seccomp profile).
pub fn apply(
    base: &mut Value,
    pod: &PodTemplate,
    place: &Placement<'_>,
    removed: &Removed,
) -> Result<()> {
    let c = &pod.container;
    let mut args: Vec<String> = c
        .command
        .clone()
        .unwrap_or_else(|| place.entrypoint.to_vec());
    args.extend(c.args.clone().unwrap_or_default());
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    for e in c.env.clone().unwrap_or_default() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("spec.nodeName") => place.node_name.to_string(),
                other => bail!("env {} from {other:?}: not simulated", e.name),
            },
            (None, None) => String::new(),
        };
        env.push(format!("{}={value}", e.name));
    }
    let sc = c.security_context.clone().unwrap_or_default();
    ensure!(sc.privileged != Some(true), "the container is privileged");
    let pod_sc = pod.spec.security_context.clone().unwrap_or_default();
    let uid = sc.run_as_user.or(pod_sc.run_as_user).unwrap_or(0);
    let process = &mut base["process"];
    process["args"] = json!(args);
    process["env"] = json!(env);
    process["user"] = json!({"uid": uid, "gid": 0});
    process["noNewPrivileges"] = json!(!sc.allow_privilege_escalation.unwrap_or(true));
    process["terminal"] = json!(false);

    let host_pid = pod.host_pid() && *removed != Removed::HostPid;
    let linux = &mut base["linux"];
    let mut namespaces = Vec::new();
    for ns in linux["namespaces"].as_array().cloned().unwrap_or_default() {
        match ns["type"].as_str() {
            Some("pid") if host_pid => {}
            Some("pid") => namespaces.push(json!({"type": "pid"})),
            Some("network") => namespaces
                .push(json!({"type": "network", "path": place.netns.display().to_string()})),
            _ => namespaces.push(ns),
        }
    }
    linux["namespaces"] = json!(namespaces);
    linux["cgroupsPath"] = json!(format!(
        "/kubepods/burstable/pod{}/{}",
        place.pod_uid, place.container_id
    ));
    if *removed == Removed::KernelBtf {
        linux["maskedPaths"]
            .as_array_mut()
            .context("no maskedPaths")?
            .push(json!("/sys/kernel/btf"));
    }
    apply_resources(linux, &pod.container)?;
    let mounts = base["mounts"].as_array_mut().context("no mounts")?;
    // The CRI plugin drops the default /run tmpfs (oci.WithoutRunMount).
    mounts.retain(|m| m["destination"] != "/run");
    mounts.extend(pod_mounts(pod, place, removed)?);
    Ok(())
}

/// The mounts CRI and kubelet add after containerd's defaults, in order.
fn pod_mounts(pod: &PodTemplate, place: &Placement<'_>, removed: &Removed) -> Result<Vec<Value>> {
    let ro = pod.read_only_root();
    let bind = |src: &Path, dst: &str, read_only: bool| {
        let mut opts = vec!["rbind", "rprivate"];
        opts.push(if read_only { "ro" } else { "rw" });
        json!({"destination": dst, "type": "bind", "source": src.display().to_string(), "options": opts})
    };
    // Not privileged: cgroupfs read-only (containerd's CRI plugin).
    let mut out = vec![json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    })];
    // From the sandbox (read-only with a read-only root) and from kubelet.
    let files = place.pod_files;
    out.push(bind(&files.join("hostname"), "/etc/hostname", ro));
    out.push(bind(&files.join("resolv.conf"), "/etc/resolv.conf", ro));
    out.push(bind(&files.join("hosts"), "/etc/hosts", false));
    out.push(bind(
        &files.join("termination-log"),
        "/dev/termination-log",
        false,
    ));
    for m in pod.host_mounts()? {
        if matches!(removed, Removed::Volume(v, _) if *v == m.name) {
            continue;
        }
        let mut mount = bind(&m.host, &m.dst, m.read_only);
        if m.recursive {
            // What containerd >= 2.0's CRI plugin passes for recursive
            // read-only (runc >= 1.1 applies it with mount_setattr). With
            // `IfPossible`, containerd 1.6 (no such support) gets plain
            // "ro", which leaves submounts writable.
            mount["options"]
                .as_array_mut()
                .context("bind options")?
                .push(json!("rro"));
        }
        out.push(mount);
    }
    Ok(out)
}

/// CPU and memory as kubelet turns requests and limits into cgroup values.
fn apply_resources(linux: &mut Value, c: &Container) -> Result<()> {
    let Some(res) = &c.resources else {
        return Ok(());
    };
    let get = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    let r = &mut linux["resources"];
    if let Some(cpu) = get(&res.limits, "cpu") {
        let milli = milli_cpu(&cpu)?;
        r["cpu"]["quota"] = json!(milli * 100);
        r["cpu"]["period"] = json!(100_000);
    }
    if let Some(cpu) = get(&res.requests, "cpu") {
        r["cpu"]["shares"] = json!((milli_cpu(&cpu)? * 1024 / 1000).max(2));
    }
    if let Some(mem) = get(&res.limits, "memory") {
        r["memory"]["limit"] = json!(bytes(&mem)?);
    }
    Ok(())
}

fn milli_cpu(q: &str) -> Result<u64> {
    Ok(match q.strip_suffix('m') {
        Some(m) => m.parse()?,
        None => q.parse::<u64>()? * 1000,
    })
}

fn bytes(q: &str) -> Result<u64> {
    for (suffix, mult) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return Ok(n.parse::<u64>()? * mult);
        }
    }
    Ok(q.parse()?)
}
