//! Names of lab objects. Every object the lab creates on the host carries a
//! recognisable prefix so that `fivexx-lab clean` can find it after a crash
//! without touching anything else on the machine.

/// Prefix of network namespaces and runtime directories.
pub const PREFIX: &str = "fxlab";
/// The lab bridge (the "node's" pod network).
pub const BRIDGE: &str = "fxlab0";
/// Host-side veth names start with this (`fxv<last octet>`).
pub const VETH_PREFIX: &str = "fxv";
/// Pod UIDs the lab makes start with this, so lab pod cgroups are recognisable
/// while keeping kubelet's exact naming.
pub const UID_PREFIX: &str = "f1ab";
/// Network namespace of the ingress nginx.
pub const INGRESS_NETNS: &str = "fxlab-ingress";
/// The node's pod CIDR is 10.244.0.0/24: .1 is the bridge (the node), .2 the
/// ingress, pods get .10 to .250.
pub const BRIDGE_IP: [u8; 4] = [10, 244, 0, 1];
pub const INGRESS_IP: [u8; 4] = [10, 244, 0, 2];
/// The external load balancer (lb-deregistration-lag): its own netns on
/// a network outside the pod CIDR and the Service range, routed to the
/// pods through the host (the node), as a cloud load balancer in IP mode
/// reaches pod IPs over the VPC. Host side `.1`, the load balancer `.10`.
pub const EXTERNAL_LB_NETNS: &str = "fxlab-elb";
pub const EXTERNAL_NET_GW: [u8; 4] = [172, 31, 0, 1];
pub const EXTERNAL_LB_IP: [u8; 4] = [172, 31, 0, 10];
/// Its host-side veth (carries [`VETH_PREFIX`], so `clean` finds it).
pub const EXTERNAL_LB_VETH: &str = "fxvelb";
pub const POD_IP_FIRST: u8 = 10;
pub const POD_IP_LAST: u8 = 250;
/// Port every backend listens on (the container port).
pub const BACKEND_PORT: u16 = 8080;
/// The Service the Deployment's pods back. A name the node needs too: the
/// ingress names its upstream after it (`<namespace>-<service>-<port>`,
/// as ingress-nginx does).
pub const SERVICE: &str = "web";
/// Runtime directory of the lab: nginx prefixes, the lock file.
pub const RUN_DIR: &str = "/run/fxlab";

/// The network namespace name of a pod.
pub fn pod_netns(pod: &str) -> String {
    format!("{PREFIX}-{pod}")
}

/// A fresh pod UID (a v4 UUID from the kernel) carrying the lab prefix.
pub fn new_pod_uid() -> String {
    let uuid = kernel_uuid();
    format!("{UID_PREFIX}{}", &uuid[UID_PREFIX.len()..])
}

/// A fresh 64-hex-digit container id, as containerd makes them.
pub fn new_container_id() -> String {
    let mut id = String::with_capacity(64);
    while id.len() < 64 {
        id.extend(kernel_uuid().chars().filter(|c| *c != '-'));
    }
    id.truncate(64);
    id
}

/// A short random suffix for pod names (`web-5d8f-x7k2p`).
pub fn short_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let raw = kernel_uuid();
    raw.bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .take(len)
        .map(|b| ALPHABET[(b as usize * 7) % ALPHABET.len()] as char)
        .collect()
}

fn kernel_uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| {
            // Fallback: time-derived, still unique within a run.
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let h = format!("{n:032x}");
            format!(
                "{}-{}-4{}-8{}-{}",
                &h[0..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_container_id_shapes() {
        let uid = new_pod_uid();
        assert!(uid.starts_with(UID_PREFIX));
        assert_eq!(uid.len(), 36);
        assert_eq!(uid.matches('-').count(), 4);
        let id = new_container_id();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_container_id(), id);
    }
}
