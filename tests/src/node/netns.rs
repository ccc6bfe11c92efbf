//! Pods as network namespaces: a veth pair per pod on the lab bridge, an IP
//! from the node's pod CIDR, torn down the way CNI DEL does it.
//!
//! We drive iproute2 (`ip`) rather than netlink directly: it is the tool an
//! operator would use to inspect the same objects, and its errors are clear.

use crate::node::naming::{self, BRIDGE, BRIDGE_IP, POD_IP_FIRST, POD_IP_LAST, VETH_PREFIX};
use crate::{io_err, Error, Result};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(io_err("running ip (is iproute2 installed?)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            cmd: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip ARGS` and returns stdout.
pub fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(io_err("running ip (is iproute2 installed?)"))?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lab bridge, with the node's address on it.
pub fn ensure_bridge() -> Result<()> {
    if std::path::Path::new(&format!("/sys/class/net/{BRIDGE}")).exists() {
        return Ok(());
    }
    ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    let addr = format!("{}/24", Ipv4Addr::from(BRIDGE_IP));
    ip(&["addr", "add", &addr, "dev", BRIDGE])?;
    ip(&["link", "set", BRIDGE, "up"])
}

/// A network namespace attached to the bridge: a pod sandbox or the ingress.
#[derive(Debug)]
pub struct PodNetwork {
    pub netns: String,
    pub ip: Ipv4Addr,
    pub host_veth: String,
}

impl PodNetwork {
    /// Creates the namespace, the veth pair and the address (CNI ADD).
    pub fn create(netns: &str, ip_addr: Ipv4Addr) -> Result<PodNetwork> {
        let octet = ip_addr.octets()[3];
        let host_veth = format!("{VETH_PREFIX}{octet}");
        let peer = format!("fxp{octet}");
        // A leftover of a crashed run with the same IP would make `add` fail.
        let _ = ip(&["link", "del", &host_veth]);
        let _ = ip(&["netns", "del", netns]);
        ip(&["netns", "add", netns])?;
        let net = PodNetwork {
            netns: netns.to_string(),
            ip: ip_addr,
            host_veth: host_veth.clone(),
        };
        let cidr = format!("{ip_addr}/24");
        let gw = Ipv4Addr::from(BRIDGE_IP).to_string();
        let steps: [&[&str]; 9] = [
            &[
                "link", "add", &host_veth, "type", "veth", "peer", "name", &peer,
            ],
            &["link", "set", &peer, "netns", netns],
            &["link", "set", &host_veth, "master", BRIDGE],
            &["link", "set", &host_veth, "up"],
            &["-n", netns, "link", "set", &peer, "name", "eth0"],
            &["-n", netns, "addr", "add", &cidr, "dev", "eth0"],
            &["-n", netns, "link", "set", "eth0", "up"],
            &["-n", netns, "link", "set", "lo", "up"],
            &["-n", netns, "route", "add", "default", "via", &gw],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                net.destroy();
                return Err(e);
            }
        }
        Ok(net)
    }

    /// A namespace outside the pod network (an external load balancer):
    /// a veth pair to the host, `gw` on the host side, `ip_addr` inside,
    /// its default route through the host, and the host forwarding
    /// between it and the pod bridge, as a node routes VPC traffic to its
    /// pods. Nothing in it is on the bridge.
    pub fn create_external(
        netns: &str,
        ip_addr: Ipv4Addr,
        gw: Ipv4Addr,
        host_veth: &str,
    ) -> Result<PodNetwork> {
        let peer = format!("{host_veth}p");
        let _ = ip(&["link", "del", host_veth]);
        let _ = ip(&["netns", "del", netns]);
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(io_err("enabling IPv4 forwarding on the host"))?;
        ip(&["netns", "add", netns])?;
        let net = PodNetwork {
            netns: netns.to_string(),
            ip: ip_addr,
            host_veth: host_veth.to_string(),
        };
        let (gw_cidr, cidr, gw) = (format!("{gw}/24"), format!("{ip_addr}/24"), gw.to_string());
        let steps: [&[&str]; 9] = [
            &[
                "link", "add", host_veth, "type", "veth", "peer", "name", &peer,
            ],
            &["link", "set", &peer, "netns", netns],
            &["addr", "add", &gw_cidr, "dev", host_veth],
            &["link", "set", host_veth, "up"],
            &["-n", netns, "link", "set", &peer, "name", "eth0"],
            &["-n", netns, "addr", "add", &cidr, "dev", "eth0"],
            &["-n", netns, "link", "set", "eth0", "up"],
            &["-n", netns, "link", "set", "lo", "up"],
            &["-n", netns, "route", "add", "default", "via", &gw],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                net.destroy();
                return Err(e);
            }
        }
        Ok(net)
    }

    /// Path of the namespace file processes join with setns(2).
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.netns)
    }

    /// Removes the namespace; its veth pair goes with it (CNI DEL). Safe to
    /// call twice.
    pub fn destroy(&self) {
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = ip(&["link", "del", &self.host_veth]);
    }
}

/// Pod IPs from 10.244.0.0/24, allocated like CNI host-local: the next free
/// address after the last one handed out, wrapping around, so an address
/// freed by a deleted pod is reused later, as in a real cluster, but not at
/// once.
#[derive(Debug)]
pub struct IpPool {
    in_use: BTreeSet<u8>,
    last: u8,
}

impl Default for IpPool {
    fn default() -> Self {
        IpPool {
            in_use: BTreeSet::new(),
            last: POD_IP_FIRST - 1,
        }
    }
}

impl IpPool {
    pub fn allocate(&mut self) -> Result<Ipv4Addr> {
        let span = (POD_IP_LAST - POD_IP_FIRST + 1) as u16;
        for step in 1..=span {
            let off = (self.last as u16 + step - POD_IP_FIRST as u16) % span;
            let octet = POD_IP_FIRST + off as u8;
            if self.in_use.insert(octet) {
                self.last = octet;
                let [a, b, c, _] = naming::BRIDGE_IP;
                return Ok(Ipv4Addr::new(a, b, c, octet));
            }
        }
        Err(Error::Lab("pod CIDR 10.244.0.0/24 is exhausted".into()))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&ip.octets()[3]);
    }
}

/// Lab network namespaces that exist now.
pub fn lab_namespaces() -> Vec<String> {
    let Ok(out) = ip_output(&["netns", "list"]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{}-", naming::PREFIX)))
        .map(str::to_string)
        .collect()
}

/// Pids of processes inside a network namespace.
pub fn netns_pids(netns: &str) -> Vec<i32> {
    ip_output(&["netns", "pids", netns])
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_freed_addresses_only_after_wrapping() {
        let mut pool = IpPool::default();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 0, 10));
        assert_eq!(b, Ipv4Addr::new(10, 244, 0, 11));
        pool.release(a);
        assert_eq!(pool.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 12));
        for _ in 13..=250 {
            pool.allocate().unwrap();
        }
        // Wrapped: the freed .10 comes back.
        assert_eq!(pool.allocate().unwrap(), a);
        assert!(pool.allocate().is_err());
    }
}
