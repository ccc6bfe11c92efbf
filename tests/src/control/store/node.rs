//! The lab's node objects, registered as a kubelet registers its node.

use super::*;

/// The lab's node as a kubelet would register it.
pub fn lab_node(name: &str) -> Node {
    let now = now();
    let (kernel, arch) = uname();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                [
                    ("kubernetes.io/hostname".to_string(), name.to_string()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                    ("kubernetes.io/arch".to_string(), arch.clone()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some("10.244.0.0/24".into()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: "127.0.0.1".into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
            }]),
            node_info: Some(NodeSystemInfo {
                architecture: arch,
                kernel_version: kernel,
                kubelet_version: LAB_KUBELET_VERSION.into(),
                kube_proxy_version: String::new(),
                operating_system: "linux".into(),
                os_image: os_image(),
                container_runtime_version: "containerd://fivexx-lab".into(),
                boot_id: String::new(),
                machine_id: String::new(),
                system_uuid: String::new(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Kernel release and Kubernetes architecture name of this machine.
fn uname() -> (String, String) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (kernel, arch.to_string())
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}
