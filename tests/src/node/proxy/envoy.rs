//! The ingress as Envoy Gateway runs its data plane: the real, pinned Envoy
//! (`scripts/envoy.sh`) with a listener on port 80 of the ingress IP, one
//! route, and a cluster whose endpoints come by EDS. Envoy Gateway serves
//! EDS over xDS from its control plane; here the same resource comes from a
//! file Envoy watches (path-based EDS with a watched directory): an
//! endpoint change writes the new `ClusterLoadAssignment` elsewhere and
//! renames it into the watched directory, as Envoy's docs require, and the
//! running Envoy applies it without a restart. The update has taken effect
//! when the admin endpoint's `/clusters` lists exactly the new hosts.
//!
//! Envoy writes its access log to `/dev/stdout` (the default text format,
//! or Envoy Gateway's default JSON), which the lab reads as the container
//! runtime would ([`super::runtime_log`]). Its own diagnostics go to
//! stderr, kept in `envoy-stderr.log`.
//!
//! This file is longer than 600 lines because the bootstrap, the EDS
//! resource and the admin parsers are pure functions tested here, beside
//! the process they configure.

use super::{runtime_log, IngressProxy, ProxyKind, RetryStats};
use crate::node::naming;
use crate::node::netns::PodNetwork;
use crate::{io_err, Error, Result};
use serde_json::{json, Value};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Envoy Gateway's names for Gateway `shop/eg`, its HTTP listener and the
/// HTTPRoute `shop/web` rule 0 (the cluster is named after the route rule).
pub const LISTENER: &str = "shop/eg/http";
pub const CLUSTER: &str = "httproute/shop/web/rule/0";
const ROUTE: &str = "httproute/shop/web/rule/0/match/0/*";

/// Istio's default retry policy (`retry_on`, 2 retries).
pub const ISTIO_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The access log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EnvoyLogFormat {
    /// Envoy's default text format (no format configured).
    #[default]
    Text,
    /// Envoy Gateway's default: a JSON object per line.
    Json,
}

/// Envoy settings the scenarios vary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EnvoyConfig {
    /// Istio's default retries (2, on connect-failure, refused-stream,
    /// unavailable, cancelled, retriable-status-codes); off: Envoy
    /// Gateway's default, no retries.
    pub istio_retries: bool,
    pub log_format: EnvoyLogFormat,
    /// The cluster's `connect_timeout`.
    pub connect_timeout_ms: u64,
    /// Upstream HTTP `idle_timeout` of pooled connections; 0: no reuse
    /// (one request per upstream connection).
    pub upstream_idle_timeout_ms: u64,
    /// The route's `timeout` (whole upstream response).
    pub route_timeout_ms: u64,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        EnvoyConfig {
            istio_retries: false,
            log_format: EnvoyLogFormat::Text,
            connect_timeout_ms: 1000,
            upstream_idle_timeout_ms: 60_000,
            route_timeout_ms: 5000,
            concurrency: 2,
        }
    }
}

/// The Envoy binary: `$FIVEXX_ENVOY`, else the one `scripts/envoy.sh`
/// installs in the repository's `.cache`.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FIVEXX_ENVOY") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Lab(format!(
                "FIVEXX_ENVOY={} is not a file",
                p.display()
            )))
        };
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/envoy/bin/envoy");
    if p.is_file() {
        return Ok(p);
    }
    Err(Error::Lab(format!(
        "Envoy not found at {}: run `make setup` (scripts/envoy.sh), or set FIVEXX_ENVOY",
        p.display()
    )))
}

/// Paths of one Envoy's files.
#[derive(Clone, Debug)]
pub struct EnvoyPaths {
    pub dir: PathBuf,
}

impl EnvoyPaths {
    pub fn bootstrap(&self) -> PathBuf {
        self.dir.join("envoy.json")
    }
    /// The directory Envoy watches for EDS updates.
    pub fn eds_dir(&self) -> PathBuf {
        self.dir.join("eds")
    }
    pub fn eds_file(&self) -> PathBuf {
        self.eds_dir().join("eds.json")
    }
    pub fn admin_socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }
    pub fn stderr_log(&self) -> PathBuf {
        self.dir.join("envoy-stderr.log")
    }
}

/// A running Envoy.
pub struct Envoy {
    pub cfg: EnvoyConfig,
    net: PodNetwork,
    paths: EnvoyPaths,
    child: Child,
    endpoints: Vec<Ipv4Addr>,
    version: u64,
}

impl Envoy {
    /// Starts Envoy in `net` with no endpoints and waits until it listens.
    pub fn start(
        cfg: EnvoyConfig,
        net: PodNetwork,
        procs_fds: Vec<OwnedFd>,
        dir: &Path,
    ) -> Result<Envoy> {
        let bin = binary()?;
        let dir = super::fresh_dir(dir)?;
        let paths = EnvoyPaths { dir: dir.clone() };
        fs::create_dir_all(paths.eds_dir()).map_err(io_err("creating the EDS directory"))?;
        write_eds(&paths, 0, &[])?;
        let boot = render_bootstrap(&cfg, &paths, net.ip);
        fs::write(
            paths.bootstrap(),
            serde_json::to_vec_pretty(&boot).unwrap_or_default(),
        )
        .map_err(io_err("writing envoy.json"))?;
        let stderr =
            fs::File::create(paths.stderr_log()).map_err(io_err("creating envoy's log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(paths.bootstrap())
            .args(["--concurrency", &cfg.concurrency.max(1).to_string()])
            // One Envoy per lab, and none of hot restart's shared memory
            // to collide with another Envoy on the machine.
            .arg("--disable-hot-restart")
            .args(["--log-level", "warn"])
            // The access log file (the pipe) is flushed every 10 ms, not
            // Envoy's default 10 s: the runtime stamps a line when it
            // reads it, and a 10 s old stamp would misplace it.
            .args(["--file-flush-interval-msec", "10"])
            .args([
                "--service-node",
                "envoy-shop-eg",
                "--service-cluster",
                "shop/eg",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = super::spawn_in_pod(&mut cmd, &net, procs_fds, "envoy")?;
        if let Some(out) = child.stdout.take() {
            runtime_log::follow(out, "stdout", dir.join(runtime_log::FILE))
                .map_err(io_err("following envoy's stdout"))?;
        }
        let mut envoy = Envoy {
            cfg,
            net,
            paths,
            child,
            endpoints: Vec::new(),
            version: 0,
        };
        let addr = envoy.address();
        let errlog = envoy.paths.stderr_log();
        if let Err(e) = super::wait_listening(&mut envoy.child, addr, "envoy", &errlog) {
            envoy.stop();
            return Err(e);
        }
        Ok(envoy)
    }

    /// The admin endpoint's answer to `GET path`.
    pub fn admin(&self, path: &str) -> Result<String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        let resp = super::unix_exchange(&self.paths.admin_socket(), req.as_bytes())?;
        match resp.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => {
                let chunked = head
                    .to_ascii_lowercase()
                    .contains("transfer-encoding: chunked");
                Ok(if chunked {
                    dechunk(body)
                } else {
                    body.to_string()
                })
            }
            _ => Err(Error::Lab(format!(
                "envoy admin {path}: {}",
                resp.lines().next().unwrap_or("no answer")
            ))),
        }
    }

    /// The hosts Envoy has in the cluster now (from `/clusters`).
    pub fn cluster_hosts(&self) -> Result<Vec<Ipv4Addr>> {
        Ok(parse_cluster_hosts(&self.admin("/clusters")?, CLUSTER))
    }

    /// One counter from `/stats` (0 if absent).
    pub fn stat(&self, name: &str) -> Result<u64> {
        // The filter is a regex; the counter's own last part selects it
        // without escaping the cluster name's dots and slashes.
        let last = name.rsplit('.').next().unwrap_or(name);
        let body = self.admin(&format!("/stats?filter={last}"))?;
        Ok(parse_stat(&body, name).unwrap_or(0))
    }
}

impl IngressProxy for Envoy {
    fn kind(&self) -> ProxyKind {
        ProxyKind::Envoy
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::new(self.net.ip.into(), 80)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn network(&self) -> &PodNetwork {
        &self.net
    }

    fn endpoints(&self) -> &[Ipv4Addr] {
        &self.endpoints
    }

    /// Renames a new EDS file into the watched directory and waits until
    /// `/clusters` lists exactly the new hosts.
    fn set_endpoints(&mut self, endpoints: &[Ipv4Addr]) -> Result<()> {
        self.version += 1;
        write_eds(&self.paths, self.version, endpoints)?;
        self.endpoints = endpoints.to_vec();
        let mut want = endpoints.to_vec();
        want.sort();
        want.dedup();
        let started = Instant::now();
        let mut moved = started;
        loop {
            let mut have = self.cluster_hosts()?;
            have.sort();
            if have == want {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(3) {
                return Err(Error::Lab(format!(
                    "envoy did not take EDS version {} within 3 s: hosts {have:?}, want {want:?}",
                    self.version
                )));
            }
            // A move the watch missed (it can come while Envoy still
            // reads the previous one): move the file in again.
            if moved.elapsed() > Duration::from_millis(500) {
                self.version += 1;
                write_eds(&self.paths, self.version, endpoints)?;
                moved = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn retry_stats(&self) -> Result<Option<RetryStats>> {
        Ok(Some(RetryStats {
            retried: self.stat(&format!("cluster.{CLUSTER}.upstream_rq_retry"))?,
            redispatched: 0,
        }))
    }

    fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    fn stop(&mut self) {
        super::stop_child(&mut self.child);
    }
}

/// Writes EDS version `version` for `endpoints`: to a temporary file
/// outside the watched directory, then renamed over `eds.json` (Envoy
/// reloads on the move into the directory it watches).
fn write_eds(paths: &EnvoyPaths, version: u64, endpoints: &[Ipv4Addr]) -> Result<()> {
    let tmp = paths.dir.join("tmp").join("eds.json.new");
    let body = render_eds(version, endpoints);
    fs::write(&tmp, serde_json::to_vec(&body).unwrap_or_default())
        .map_err(io_err("writing the EDS file"))?;
    fs::rename(&tmp, paths.eds_file()).map_err(io_err("renaming the EDS file into place"))
}

/// The EDS `DiscoveryResponse` for the cluster. Pure, unit-tested.
pub fn render_eds(version: u64, endpoints: &[Ipv4Addr]) -> Value {
    let lb: Vec<Value> = endpoints
        .iter()
        .map(|ip| {
            json!({"endpoint": {"address": {"socket_address": {
                "address": ip.to_string(),
                "port_value": naming::BACKEND_PORT,
            }}}})
        })
        .collect();
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": CLUSTER,
            "endpoints": if lb.is_empty() { json!([]) } else { json!([{"lb_endpoints": lb}]) },
        }],
    })
}

/// Envoy Gateway's default JSON access log line (its `text_format_source`).
pub const GATEWAY_JSON_FORMAT: &str = concat!(
    r#"{"start_time":"%START_TIME%","method":"%REQ(:METHOD)%","x-envoy-origin-path":"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%","#,
    r#""protocol":"%PROTOCOL%","response_code":"%RESPONSE_CODE%","response_flags":"%RESPONSE_FLAGS%","#,
    r#""response_code_details":"%RESPONSE_CODE_DETAILS%","connection_termination_details":"%CONNECTION_TERMINATION_DETAILS%","#,
    r#""upstream_transport_failure_reason":"%UPSTREAM_TRANSPORT_FAILURE_REASON%","bytes_received":"%BYTES_RECEIVED%","#,
    r#""bytes_sent":"%BYTES_SENT%","duration":"%DURATION%","x-envoy-upstream-service-time":"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%","#,
    r#""x-forwarded-for":"%REQ(X-FORWARDED-FOR)%","user-agent":"%REQ(USER-AGENT)%","x-request-id":"%REQ(X-REQUEST-ID)%","#,
    r#"":authority":"%REQ(:AUTHORITY)%","upstream_host":"%UPSTREAM_HOST%","upstream_cluster":"%UPSTREAM_CLUSTER%","#,
    r#""upstream_local_address":"%UPSTREAM_LOCAL_ADDRESS%","downstream_local_address":"%DOWNSTREAM_LOCAL_ADDRESS%","#,
    r#""downstream_remote_address":"%DOWNSTREAM_REMOTE_ADDRESS%","requested_server_name":"%REQUESTED_SERVER_NAME%","#,
    r#""route_name":"%ROUTE_NAME%"}"#,
    "\n"
);

fn ms(v: u64) -> String {
    format!("{}.{:03}s", v / 1000, v % 1000)
}

/// The bootstrap: admin on a Unix socket, the listener, the route and the
/// EDS cluster. Pure, unit-tested.
pub fn render_bootstrap(cfg: &EnvoyConfig, paths: &EnvoyPaths, listen: Ipv4Addr) -> Value {
    let mut file_log = json!({
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": "/dev/stdout",
    });
    if cfg.log_format == EnvoyLogFormat::Json {
        file_log["log_format"] =
            json!({"text_format_source": {"inline_string": GATEWAY_JSON_FORMAT}});
    }
    let mut route = json!({
        "cluster": CLUSTER,
        "timeout": ms(cfg.route_timeout_ms),
    });
    if cfg.istio_retries {
        // Istio's default VirtualService retry policy, as istiod renders it.
        route["retry_policy"] = json!({
            "retry_on": ISTIO_RETRY_ON,
            "num_retries": 2,
            "retriable_status_codes": [503],
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }],
            "host_selection_retry_max_attempts": "5",
        });
    }
    let mut http_options = json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http_protocol_options": {}},
    });
    if cfg.upstream_idle_timeout_ms > 0 {
        http_options["common_http_protocol_options"] =
            json!({"idle_timeout": ms(cfg.upstream_idle_timeout_ms)});
    } else {
        http_options["common_http_protocol_options"] = json!({"max_requests_per_connection": 1});
    }
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "http-80",
        "access_log": [{"name": "envoy.access_loggers.file", "typed_config": file_log}],
        "route_config": {
            "name": LISTENER,
            "virtual_hosts": [{
                "name": format!("{LISTENER}/*"),
                "domains": ["*"],
                // x-envoy-attempt-count: the lab's per-request ground truth
                // of the tries Envoy made.
                "include_attempt_count_in_response": true,
                "routes": [{
                    "name": ROUTE,
                    "match": {"prefix": "/"},
                    "route": route,
                }],
            }],
            // The upstream Envoy picked, on every answer, its own too (the
            // router's local replies apply the route's headers). The
            // selected host, not %UPSTREAM_REMOTE_ADDRESS%, which a failed
            // connect (503 UF) leaves empty.
            "response_headers_to_add": [{
                "header": {"key": "X-Upstream-Addr", "value": "%UPSTREAM_HOST%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }],
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    });
    json!({
        "node": {"id": "envoy-shop-eg", "cluster": "shop/eg"},
        "admin": {"address": {"pipe": {"path": paths.admin_socket().display().to_string()}}},
        "static_resources": {
            "listeners": [{
                "name": LISTENER,
                "address": {"socket_address": {"address": listen.to_string(), "port_value": 80}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm,
                }]}],
            }],
            "clusters": [{
                "name": CLUSTER,
                "type": "EDS",
                // Envoy Gateway's default load balancer.
                "lb_policy": "LEAST_REQUEST",
                "connect_timeout": ms(cfg.connect_timeout_ms),
                "eds_cluster_config": {
                    "service_name": CLUSTER,
                    "eds_config": {
                        "resource_api_version": "V3",
                        "path_config_source": {
                            "path": paths.eds_file().display().to_string(),
                            "watched_directory": {"path": paths.eds_dir().display().to_string()},
                        },
                    },
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http_options,
                },
            }],
        },
    })
}

/// An HTTP/1.1 chunked body, decoded (the admin answers large pages so).
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Host addresses of `cluster` in the admin `/clusters` text
/// (`NAME::10.244.0.10:8080::cx_active::0`).
pub fn parse_cluster_hosts(text: &str, cluster: &str) -> Vec<Ipv4Addr> {
    let prefix = format!("{cluster}::");
    let mut hosts: Vec<Ipv4Addr> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (addr, _) = rest.split_once("::")?;
            addr.parse::<SocketAddr>().ok()
        })
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            _ => None,
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `name: 42` from the admin `/stats` text.
pub fn parse_stat(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> EnvoyPaths {
        EnvoyPaths {
            dir: PathBuf::from("/run/x"),
        }
    }

    #[test]
    fn bootstrap_is_envoy_gateways_shape() {
        let b = render_bootstrap(
            &EnvoyConfig::default(),
            &paths(),
            Ipv4Addr::new(10, 244, 0, 2),
        );
        let l = &b["static_resources"]["listeners"][0];
        assert_eq!(l["address"]["socket_address"]["address"], "10.244.0.2");
        assert_eq!(l["address"]["socket_address"]["port_value"], 80);
        let c = &b["static_resources"]["clusters"][0];
        assert_eq!(c["type"], "EDS");
        assert_eq!(c["connect_timeout"], "1.000s");
        let src = &c["eds_cluster_config"]["eds_config"]["path_config_source"];
        assert_eq!(src["path"], "/run/x/eds/eds.json");
        assert_eq!(src["watched_directory"]["path"], "/run/x/eds");
        let hopts = &c["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            hopts["common_http_protocol_options"]["idle_timeout"],
            "60.000s"
        );
        assert_eq!(b["admin"]["address"]["pipe"]["path"], "/run/x/admin.sock");
        let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
        let log = &hcm["access_log"][0]["typed_config"];
        assert_eq!(log["path"], "/dev/stdout");
        assert!(log.get("log_format").is_none(), "the default text format");
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
        assert!(
            route.get("retry_policy").is_none(),
            "Envoy Gateway: no retries"
        );
        assert_eq!(route["timeout"], "5.000s");
        let hdr = &hcm["route_config"]["response_headers_to_add"][0]["header"];
        assert_eq!(hdr["value"], "%UPSTREAM_HOST%");
    }

    #[test]
    fn istio_retries_and_gateway_json_log() {
        let cfg = EnvoyConfig {
            istio_retries: true,
            log_format: EnvoyLogFormat::Json,
            upstream_idle_timeout_ms: 0,
            ..Default::default()
        };
        let b = render_bootstrap(&cfg, &paths(), Ipv4Addr::new(10, 244, 0, 2));
        let hcm = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        let rp = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["retry_policy"];
        assert_eq!(rp["num_retries"], 2);
        assert_eq!(
            rp["retry_on"],
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
        );
        let fmt = hcm["access_log"][0]["typed_config"]["log_format"]["text_format_source"]
            ["inline_string"]
            .as_str()
            .unwrap();
        let sample: Value = serde_json::from_str(fmt.trim()).expect("the format is a JSON object");
        assert_eq!(sample["response_flags"], "%RESPONSE_FLAGS%");
        assert_eq!(sample["upstream_host"], "%UPSTREAM_HOST%");
        let c = &b["static_resources"]["clusters"][0];
        assert_eq!(
            c["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                ["common_http_protocol_options"]["max_requests_per_connection"],
            1
        );
    }

    #[test]
    fn eds_lists_endpoints_and_empty_is_no_locality() {
        let e = render_eds(
            3,
            &[Ipv4Addr::new(10, 244, 0, 10), Ipv4Addr::new(10, 244, 0, 11)],
        );
        assert_eq!(e["version_info"], "3");
        let r = &e["resources"][0];
        assert_eq!(r["cluster_name"], CLUSTER);
        let lb = r["endpoints"][0]["lb_endpoints"].as_array().unwrap();
        assert_eq!(lb.len(), 2);
        assert_eq!(
            lb[1]["endpoint"]["address"]["socket_address"]["address"],
            "10.244.0.11"
        );
        assert_eq!(
            lb[1]["endpoint"]["address"]["socket_address"]["port_value"],
            8080
        );
        let empty = render_eds(4, &[]);
        assert_eq!(empty["resources"][0]["endpoints"], json!([]));
    }

    #[test]
    fn admin_text_parses() {
        let clusters = format!(
            "{CLUSTER}::observability_name::{CLUSTER}\n{CLUSTER}::10.244.0.11:8080::cx_active::1\n{CLUSTER}::10.244.0.10:8080::rq_total::4\n{CLUSTER}::10.244.0.11:8080::rq_total::2\nother::10.0.0.1:80::cx_active::0\n"
        );
        assert_eq!(
            parse_cluster_hosts(&clusters, CLUSTER),
            vec![Ipv4Addr::new(10, 244, 0, 10), Ipv4Addr::new(10, 244, 0, 11)]
        );
        assert_eq!(
            dechunk("5\r\nab\ncd\r\n3\r\nef\n\r\n0\r\n\r\n"),
            "ab\ncdef\n"
        );
        let stats = format!("cluster.{CLUSTER}.upstream_rq_retry: 17\n");
        assert_eq!(
            parse_stat(&stats, &format!("cluster.{CLUSTER}.upstream_rq_retry")),
            Some(17)
        );
    }
}
