//! pid and cgroup id to pod UID and container id.
//!
//! Kubelet names cgroups after the pod UID and the runtime after the
//! container id, so the cgroup path is the join key between a kernel fact and
//! a Kubernetes object. The processes and cgroups we care about vanish right
//! after the events (that is why they are events), so lookups are cached
//! briefly and also indexed by cgroup id, which outlives the pid.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fivexx_core::KernelEvent;

/// A container as named by its cgroup path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub pod_uid: String,
    /// Empty for the pod-level cgroup itself.
    pub container_id: String,
    /// containerd, crio, docker, or "" when the runtime is not named.
    pub runtime: &'static str,
}

/// Parses a cgroup path in any of the layouts kubelet produces:
/// - systemd driver: `.../kubepods-burstable-pod<UID_with_underscores>.slice/cri-containerd-<ID>.scope`
///   (also `crio-<ID>.scope`, `docker-<ID>.scope`), and `kubepods-pod<UID>.slice` for Guaranteed;
/// - cgroupfs driver: `/kubepods/<qos>/pod<UID>/<ID>` or `/kubepods/pod<UID>/<ID>`.
pub fn pod_from_cgroup_path(path: &str) -> Option<PodRef> {
    let mut pod_uid = None;
    let mut container_id = String::new();
    let mut runtime = "";
    let mut in_kubepods = false;
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == "kubepods" || seg.starts_with("kubepods.slice") || seg.starts_with("kubepods-") {
            in_kubepods = true;
        }
        if !in_kubepods {
            continue;
        }
        if let Some(slice) = seg.strip_suffix(".slice") {
            if let Some(idx) = slice.rfind("-pod") {
                let uid = slice[idx + 4..].replace('_', "-");
                if is_uid(&uid) {
                    pod_uid = Some(uid);
                }
            }
            continue;
        }
        if let Some(uid) = seg.strip_prefix("pod") {
            if is_uid(uid) {
                pod_uid = Some(uid.to_string());
                continue;
            }
        }
        if pod_uid.is_some() {
            let (rt, id) = container_segment(seg);
            if is_container_id(id) {
                container_id = id.to_string();
                runtime = rt;
            }
        }
    }
    pod_uid.map(|pod_uid| PodRef {
        pod_uid,
        container_id,
        runtime,
    })
}

fn container_segment(seg: &str) -> (&'static str, &str) {
    let seg = seg.strip_suffix(".scope").unwrap_or(seg);
    for (prefix, rt) in [
        ("cri-containerd-", "containerd"),
        ("crio-", "crio"),
        ("docker-", "docker"),
    ] {
        if let Some(id) = seg.strip_prefix(prefix) {
            return (rt, id);
        }
    }
    ("", seg)
}

fn is_uid(s: &str) -> bool {
    s.len() == 36
        && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && s.matches('-').count() == 4
}

fn is_container_id(s: &str) -> bool {
    s.len() >= 12 && s.len() <= 128 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The cgroup v2 path of a process, from `/proc/<pid>/cgroup` (the `0::` line).
pub fn cgroup_path_of(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Where the cgroup v2 hierarchy is mounted (unified, or hybrid's `unified`).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (_dev, dir, fstype) = (it.next()?, it.next()?, it.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// The cgroup id the kernel reports (`bpf_get_current_cgroup_id`) is the
/// inode number of the cgroup v2 directory.
pub fn cgroup_id_of(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| m.ino())
}

/// Bounds of a cgroup walk, so that a huge or looping hierarchy cannot
/// stall the agent.
const WALK_MAX_DEPTH: usize = 8;
const WALK_MAX_DIRS: usize = 20_000;

/// Visits the directories below `start` (itself included), depth first,
/// within the walk bounds; `visit` says whether to descend into one.
fn walk_cgroups(start: &Path, mut visit: impl FnMut(&Path, usize) -> bool) {
    let mut stack = vec![(start.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        seen += 1;
        if seen > WALK_MAX_DIRS {
            tracing::warn!("cgroup walk stopped after {WALK_MAX_DIRS} directories");
            break;
        }
        if !visit(&dir, depth) || depth >= WALK_MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
}

/// The pod-level cgroup directory of each of the pods `uids` found below
/// `root` (the kubepods part of the tree is walked; a pod's own directory
/// is not descended into).
pub fn pod_cgroup_dirs(root: &Path, uids: &BTreeSet<String>) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    if uids.is_empty() {
        return out;
    }
    walk_cgroups(root, |dir, _| {
        let rel = dir.strip_prefix(root).unwrap_or(dir).to_string_lossy();
        match pod_from_cgroup_path(&rel) {
            Some(pod) if uids.contains(&pod.pod_uid) => {
                out.entry(pod.pod_uid).or_insert_with(|| dir.to_path_buf());
                false
            }
            _ => true,
        }
    });
    out
}

/// The cgroup ids of `dir` and of every cgroup below it (a pod's
/// containers).
pub fn cgroup_ids_below(dir: &Path) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    walk_cgroups(dir, |d, _| {
        out.extend(cgroup_id_of(d));
        true
    });
    out
}

/// How often pods not found on this node are looked for again (a plugin
/// names every proxy pod to every agent; most run elsewhere).
const UNRESOLVED_RESCAN: Duration = Duration::from_secs(5);

/// The cgroups of the pods clients asked about, kept between calls: the
/// whole kubepods tree is walked only when the set of pods changes, when a
/// pod's directory is gone, or every `UNRESOLVED_RESCAN` while some pod is
/// not found; otherwise only the pods' own directories are listed, which
/// is where a restarted container's new cgroup appears.
#[derive(Debug, Default)]
pub struct PodCgroups {
    uids: BTreeSet<String>,
    dirs: BTreeMap<String, PathBuf>,
    last_walk: Option<Instant>,
    walks: u64,
}

impl PodCgroups {
    /// The cgroup ids of `uids` (pod and container levels) under `root`.
    pub fn ids(&mut self, root: &Path, uids: &BTreeSet<String>) -> BTreeSet<u64> {
        let stale = *uids != self.uids
            || self.dirs.values().any(|d| !d.is_dir())
            || (self.dirs.len() < uids.len()
                && self
                    .last_walk
                    .is_none_or(|t| t.elapsed() >= UNRESOLVED_RESCAN));
        if stale {
            self.uids = uids.clone();
            self.dirs = pod_cgroup_dirs(root, uids);
            self.last_walk = Some(Instant::now());
            self.walks += 1;
        }
        self.dirs
            .values()
            .flat_map(|d| cgroup_ids_below(d))
            .collect()
    }

    /// Full walks of the tree so far.
    pub fn walks(&self) -> u64 {
        self.walks
    }
}

const TTL: Duration = Duration::from_secs(30);
/// How long a pid's cgroup is trusted without reading `/proc` again (the
/// kubepods rescan period).
const FRESH: Duration = Duration::from_secs(2);

/// Short-lived caches from pid and cgroup id to pod.
pub struct Enricher {
    root: Option<PathBuf>,
    by_pid: HashMap<i32, (Instant, Option<(u64, String)>)>,
    by_cgroup: HashMap<u64, String>,
    last_scan: Option<Instant>,
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

impl Enricher {
    pub fn new() -> Enricher {
        Enricher {
            root: cgroup2_root(),
            by_pid: HashMap::new(),
            by_cgroup: HashMap::new(),
            last_scan: None,
        }
    }

    /// Resolves (cgroup id, cgroup path) of a live process, remembering it.
    pub fn process(&mut self, pid: i32) -> Option<(u64, String)> {
        if pid <= 0 {
            return None;
        }
        let now = Instant::now();
        let cached = self
            .by_pid
            .get(&pid)
            .filter(|(at, v)| now.duration_since(*at) < TTL && v.is_some());
        // A process seldom changes cgroup: an answer younger than the
        // rescan period is reused, so a flood of signals to one process
        // costs no /proc read per signal (it capped the agent at ~30k
        // signal events/s).
        if let Some((at, v)) = cached {
            if now.duration_since(*at) < FRESH {
                return v.clone();
            }
        }
        let Some(path) = cgroup_path_of(pid) else {
            // Already gone: the last scan's answer is the best there is.
            return cached.and_then(|(_, v)| v.clone());
        };
        let path = Some(path);
        let v = path.and_then(|p| {
            let id = self
                .root
                .as_ref()
                .and_then(|r| cgroup_id_of(&r.join(p.trim_start_matches('/'))))?;
            self.by_cgroup.insert(id, p.clone());
            Some((id, p))
        });
        if self.by_pid.len() > 65_536 {
            self.by_pid
                .retain(|_, (at, _)| now.duration_since(*at) < TTL);
        }
        self.by_pid.insert(pid, (now, v.clone()));
        v
    }

    /// Learns the cgroup of every process now running in a kubelet cgroup.
    /// The agent calls this every few seconds: a SIGKILLed process is gone
    /// by the time its event is read, but it was alive at the last scan.
    pub fn refresh_processes(&mut self) {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return;
        };
        let now = Instant::now();
        for entry in rd.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Some(path) = cgroup_path_of(pid) else {
                continue;
            };
            if !path.contains("kubepods") {
                continue;
            }
            let id = self
                .root
                .as_ref()
                .and_then(|r| cgroup_id_of(&r.join(path.trim_start_matches('/'))));
            if let Some(id) = id {
                self.by_cgroup.insert(id, path.clone());
                self.by_pid.insert(pid, (now, Some((id, path))));
            }
        }
        self.by_pid
            .retain(|_, (at, _)| now.duration_since(*at) < TTL);
    }

    /// The cgroup path for an id; rescans kubepods at most once a second on a miss.
    pub fn cgroup_path(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.by_cgroup.get(&id) {
            return Some(p.clone());
        }
        let now = Instant::now();
        if self
            .last_scan
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_scan = Some(now);
        let root = self.root.clone()?;
        self.scan(&root, &root, 0);
        self.by_cgroup.get(&id).cloned()
    }

    fn scan(&mut self, root: &Path, dir: &Path, depth: u32) {
        if depth > 8 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Only kubelet's part of the tree, and the top level leading to it.
            if depth == 0
                || name.contains("kubepods")
                || name.contains("pod")
                || path_in_kubepods(&path)
            {
                if let (Some(id), Ok(rel)) = (cgroup_id_of(&path), path.strip_prefix(root)) {
                    self.by_cgroup.insert(id, format!("/{}", rel.display()));
                }
                self.scan(root, &path, depth + 1);
            }
        }
    }

    /// Fills cgroup id, pod UID and container id of the event's subject:
    /// the signal target, the exiting process, the OOM victim, or the task.
    pub fn enrich(&mut self, ev: &mut KernelEvent) {
        use fivexx_core::KernelEventKind as K;
        let path = match ev.kind {
            K::Signal | K::OomVictim => {
                let pid = ev.target.as_ref().map(|t| t.pid).unwrap_or(0);
                self.process(pid).map(|(id, p)| {
                    ev.cgroup_id = Some(id);
                    p
                })
            }
            K::Exit | K::HttpResponse => ev.cgroup_id.and_then(|id| self.cgroup_path(id)),
            _ => None,
        };
        if let Some(pod) = path.as_deref().and_then(pod_from_cgroup_path) {
            ev.pod_uid = Some(pod.pod_uid);
            if !pod.container_id.is_empty() {
                ev.container_id = Some(pod.container_id);
            }
        }
    }
}

fn path_in_kubepods(p: &Path) -> bool {
    p.components()
        .any(|c| c.as_os_str().to_string_lossy().contains("kubepods"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    const CID: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904aa1b2c3d4e5f60718293a4b5";

    #[test]
    fn systemd_driver_containerd() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
            UID.replace('-', "_")
        );
        let r = pod_from_cgroup_path(&p).unwrap();
        assert_eq!(r.pod_uid, UID);
        assert_eq!(r.container_id, CID);
        assert_eq!(r.runtime, "containerd");
    }

    #[test]
    fn systemd_driver_guaranteed_crio_and_docker() {
        let p = format!(
            "/kubepods.slice/kubepods-pod{}.slice/crio-{CID}.scope",
            UID.replace('-', "_")
        );
        let r = pod_from_cgroup_path(&p).unwrap();
        assert_eq!((r.pod_uid.as_str(), r.runtime), (UID, "crio"));
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/docker-{CID}.scope",
            UID.replace('-', "_")
        );
        assert_eq!(pod_from_cgroup_path(&p).unwrap().runtime, "docker");
    }

    #[test]
    fn cgroupfs_driver() {
        let r = pod_from_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{CID}")).unwrap();
        assert_eq!((r.pod_uid.as_str(), r.container_id.as_str()), (UID, CID));
        let r = pod_from_cgroup_path(&format!("/kubepods/pod{UID}/{CID}")).unwrap();
        assert_eq!(r.pod_uid, UID);
    }

    /// The full walk runs once for a set of pods; a restarted container's
    /// new cgroup is found by listing the pod's directory alone; a pod
    /// directory that goes away, or a new set, walks again.
    #[test]
    fn pod_cgroups_walk_the_tree_only_when_needed() {
        let root = std::env::temp_dir().join(format!("fx-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pod = root.join(format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            UID.replace('-', "_")
        ));
        let c1 = pod.join(format!("cri-containerd-{CID}.scope"));
        std::fs::create_dir_all(&c1).unwrap();
        std::fs::create_dir_all(root.join("system.slice/other.service")).unwrap();
        let uids: BTreeSet<String> = [UID.to_string()].into();
        let mut pc = PodCgroups::default();
        let want = |dirs: &[&Path]| -> BTreeSet<u64> {
            dirs.iter().filter_map(|d| cgroup_id_of(d)).collect()
        };
        assert_eq!(pc.ids(&root, &uids), want(&[&pod, &c1]));
        assert_eq!(pc.ids(&root, &uids), want(&[&pod, &c1]));
        assert_eq!(pc.walks(), 1, "nothing changed: no second walk");
        std::fs::remove_dir(&c1).unwrap();
        let c2 = pod.join(format!("cri-containerd-{}.scope", "b".repeat(64)));
        std::fs::create_dir(&c2).unwrap();
        assert_eq!(pc.ids(&root, &uids), want(&[&pod, &c2]));
        assert_eq!(pc.walks(), 1, "a restart is seen in the pod's directory");
        std::fs::remove_dir_all(root.join("kubepods.slice")).unwrap();
        assert!(pc.ids(&root, &uids).is_empty());
        assert_eq!(pc.walks(), 2, "the pod's directory went away");
        let other: BTreeSet<String> = [UID.to_string(), "0".repeat(36)].into();
        pc.ids(&root, &other);
        pc.ids(&root, &other);
        assert_eq!(
            pc.walks(),
            3,
            "unfound pods are looked for again later, not each tick"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn pod_level_cgroup_has_no_container() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            UID.replace('-', "_")
        );
        let r = pod_from_cgroup_path(&p).unwrap();
        assert_eq!(r.container_id, "");
    }

    #[test]
    fn non_pod_paths_are_not_pods() {
        for p in [
            "/",
            "/system.slice/containerd.service",
            "/user.slice/user-0.slice/session-1.scope",
            "/kubepods.slice/kubepods-burstable.slice",
            "/system.slice/docker-abc.scope",
            "/kubepods/burstable/podnot-a-uid/abc",
        ] {
            assert_eq!(pod_from_cgroup_path(p), None, "{p}");
        }
    }
}
