//! What the end-to-end tests of the plugin share: a fake control plane
//! with a kubeconfig ([`Lab`]), running the real binary, the stand-in
//! agents that speak the real protocol (and record what the plugin sent
//! them), and the real agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fivexx_core::capability::{BtfOffsets, CapabilityReport};
use fivexx_core::protocol::{
    self as wire, AgentMessage, AgentStats, ClientMessage, PROTOCOL_VERSION,
};
use fivexx_lab::control::apiserver::{ApiServer, ApiServerConfig};
use fivexx_lab::control::store::{ClusterStore, Kind, ANY_POD};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

pub const NODE: &str = "lab-node-1";
pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-fivexx");

/// The agent binary: $FIVEXX_AGENT, else the workspace's target dirs.
pub fn agent_bin() -> PathBuf {
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
pub struct Lab {
    pub rt: tokio::runtime::Runtime,
    pub store: ClusterStore,
    pub server: Option<ApiServer>,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Lab {
    pub fn new(name: &str) -> Lab {
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

    pub fn server(&self) -> &ApiServer {
        self.server.as_ref().unwrap()
    }

    /// Runs the plugin with this lab's kubeconfig.
    pub fn run(&self, args: &[&str]) -> Output {
        run_with(args, &[("KUBECONFIG", self.kubeconfig.to_str().unwrap())])
    }

    /// The agent pods' port-forwards go to `to`; DaemonSet pods are ready.
    pub fn route_agents(&self, to: SocketAddr) {
        self.store
            .map_port_forward("fivexx-system", ANY_POD, 7450, to);
        self.store.set_daemon_set_readiness(|_, _| true);
    }

    pub fn managed_objects(&self) -> Vec<String> {
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
    pub fn add_pod(&self, name: &str, ip: &str) -> Pod {
        self.add_pod_on(NODE, name, ip)
    }

    /// A running pod of namespace `default` (label `app=web`) on `node`.
    pub fn add_pod_on(&self, node: &str, name: &str, ip: &str) -> Pod {
        self.store.apply_pod(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                ..Default::default()
            }),
        })
    }
}

pub fn run_with(args: &[&str], env: &[(&str, &str)]) -> Output {
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

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure: non-zero exit, a one-line cause containing `cause`,
/// and a `hint:` line containing `hint`.
pub fn assert_fails(o: &Output, cause: &str, hint: &str) {
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
pub fn fake_agent(
    rt: &tokio::runtime::Runtime,
    version: &str,
    die_after: Option<Duration>,
) -> SocketAddr {
    fake_agent_recording(rt, version, die_after).0
}

/// What clients sent a fake agent: per connection, in order, every
/// message (the `Subscribe`, then any `Update`s).
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<Messages>>>);

/// One connection's messages.
type Messages = Arc<Mutex<Vec<ClientMessage>>>;

impl Received {
    /// One list of messages per connection, in the order they connected.
    pub fn connections(&self) -> Vec<Vec<ClientMessage>> {
        let conns = self.0.lock().unwrap();
        conns.iter().map(|c| c.lock().unwrap().clone()).collect()
    }

    fn connect(&self) -> Messages {
        let conn = Arc::default();
        self.0.lock().unwrap().push(Arc::clone(&conn));
        conn
    }
}

/// [`fake_agent`], which also records what each client sent.
pub fn fake_agent_recording(
    rt: &tokio::runtime::Runtime,
    version: &str,
    die_after: Option<Duration>,
) -> (SocketAddr, Received) {
    spawn_fake(rt, version, PROTOCOL_VERSION, die_after)
}

/// A fake agent of this plugin's version that speaks another protocol.
pub fn fake_agent_of_protocol(rt: &tokio::runtime::Runtime, protocol: u32) -> SocketAddr {
    spawn_fake(rt, env!("CARGO_PKG_VERSION"), protocol, None).0
}

fn spawn_fake(
    rt: &tokio::runtime::Runtime,
    version: &str,
    protocol: u32,
    die_after: Option<Duration>,
) -> (SocketAddr, Received) {
    let received = Received::default();
    let recorded = received.clone();
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
            let conn = received.connect();
            tokio::spawn(serve_fake(sock, version.clone(), protocol, die_after, conn));
        }
    });
    (addr, recorded)
}

/// One client of a fake agent: Hello, then Stats until `die_after`,
/// while every message the client sends is recorded.
async fn serve_fake(
    sock: tokio::net::TcpStream,
    version: String,
    protocol: u32,
    die_after: Option<Duration>,
    conn: Messages,
) {
    let (mut tx, mut rx) = Framed::new(sock, LengthDelimitedCodec::new()).split();
    let Some(Ok(first)) = rx.next().await else {
        return;
    };
    if let Ok(msg) = wire::decode_client(&first) {
        conn.lock().unwrap().push(msg);
    }
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = rx.next().await {
            if let Ok(msg) = wire::decode_client(&frame) {
                conn.lock().unwrap().push(msg);
            }
        }
    });
    let hello = AgentMessage::Hello {
        protocol,
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
    let start = Instant::now();
    let mut next = Some(hello);
    while let Some(msg) = next.take() {
        if tx
            .send(bytes::Bytes::from(wire::encode(&msg)))
            .await
            .is_err()
        {
            break;
        }
        if die_after.is_some_and(|d| start.elapsed() >= d) {
            break; // drop: the stream ends without Goodbye
        }
        if !matches!(msg, AgentMessage::Hello { .. }) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        next = Some(AgentMessage::Stats {
            stats: AgentStats {
                clients: 1,
                ..Default::default()
            },
        });
    }
    reader.abort();
}

/// A plugin command running in the background, whose stderr lines can be
/// waited for while it runs.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    deadline: Instant,
}

impl Running {
    /// Starts `kubectl-fivexx ARGS` against `lab`.
    pub fn start(lab: &Lab, args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .env("KUBECONFIG", &lab.kubeconfig)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (line_tx, lines) = std::sync::mpsc::channel::<String>();
        let err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = line_tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Running {
            child,
            lines,
            stderr,
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    /// Waits (at most until 30 s after the start) for a stderr line that
    /// starts with `prefix`.
    pub fn wait_for(&self, prefix: &str) {
        let left = || self.deadline.saturating_duration_since(Instant::now());
        while let Ok(line) = self.lines.recv_timeout(left()) {
            if line.starts_with(prefix) {
                return;
            }
        }
        eprintln!("no stderr line starting with `{prefix}` in time");
    }

    /// Waits for the exit: success, stdout and the whole stderr.
    pub fn finish(self) -> (bool, String, String) {
        let out = self.child.wait_with_output().unwrap();
        let (text, err) = (stdout(&out), self.stderr.join().unwrap());
        eprintln!("--- stdout\n{text}--- stderr\n{err}");
        (out.status.success(), text, err)
    }
}

/// The real agent, serving on a free loopback port.
pub struct RealAgent {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl RealAgent {
    pub fn start() -> RealAgent {
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

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}
