//! Pod sandbox helpers for the integration tests and the pods bench: a per-test network
//! (bridge, subnet, cgroup parent) so tests run side by side, a builder for
//! `PodSandboxConfig`, crictl-style JSON fixtures, CRI calls ([`rpc`]), ways to act inside a
//! pod's pinned namespaces from the host ([`host`]) and leak checks ([`leaks`]).

pub mod fixture;
pub mod host;
pub mod leaks;
pub mod rpc;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cri;

pub use fixture::load_fixture;
pub use leaks::PodTest;

/// One test's pod network: its own bridge, /24 subnet and cgroup parent, unique within the
/// machine (pid + counter), so parallel tests never share a bridge, an address or a cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNet {
    /// `berthit<pid%10000><n>`: at most 15 characters, contains "berth" (leakcheck finds it).
    pub bridge: String,
    /// `10.<200+pid%50>.<n>.0/24`
    pub subnet: String,
    /// The subnet's first three octets.
    pub octets: [u8; 3],
    /// `/berth-test-<pid>-<n>`: pods' cgroups go below it.
    pub cgroup_parent: String,
}

impl PodNet {
    /// A network no other test of this machine uses.
    pub fn unique() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Self::numbered(pid, n)
    }

    fn numbered(pid: u32, n: u32) -> Self {
        let second = 200 + (pid % 50) as u8;
        // Third octet: 1..=249, leaving room for a second (UpdateRuntimeConfig) subnet.
        let third = 1 + (n % 120) as u8;
        Self {
            bridge: format!("berthit{:04}{:02}", pid % 10_000, n % 100),
            subnet: format!("10.{second}.{third}.0/24"),
            octets: [10, second, third],
            cgroup_parent: format!("/berth-test-{pid}-{n}"),
        }
    }

    /// A second /24 for this test (UpdateRuntimeConfig), disjoint from every `subnet`.
    pub fn other_subnet(&self) -> String {
        format!(
            "10.{}.{}.0/24",
            self.octets[1],
            self.octets[2].wrapping_add(125)
        )
    }

    /// `[network]` for berthd's config.
    pub fn toml(&self) -> String {
        format!(
            "[network]\nbridge = {:?}\nsubnet = {:?}\n",
            self.bridge, self.subnet
        )
    }

    /// The bridge's address: the subnet's first address.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.octets;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// True when `ip` lies in this test's subnet (and is not the network or gateway).
    pub fn holds(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        o[..3] == self.octets && o[3] > 1 && o[3] < 255
    }

    /// berth's nft table for this bridge (family inet).
    pub fn nft_table(&self) -> String {
        format!("berth-{}", self.bridge)
    }
}

/// Builds a `PodSandboxConfig` the way the kubelet sends one.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub config: cri::PodSandboxConfig,
}

impl PodSpec {
    /// A pod named `name` in namespace "berth-test", uid `<name>-uid`, attempt 0, hostname
    /// = name, under `net`'s cgroup parent.
    pub fn new(name: &str, net: &PodNet) -> Self {
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("{name}-uid"),
                namespace: "berth-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            labels: HashMap::from([("app".to_string(), name.to_string())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: net.cgroup_parent.clone(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Self { config }
    }

    /// From a fixture, with `net`'s cgroup parent when the fixture names none.
    pub fn from_config(mut config: cri::PodSandboxConfig, net: &PodNet) -> Self {
        let linux = config.linux.get_or_insert_with(Default::default);
        if linux.cgroup_parent.is_empty() {
            linux.cgroup_parent = net.cgroup_parent.clone();
        }
        Self { config }
    }

    fn linux(&mut self) -> &mut cri::LinuxPodSandboxConfig {
        self.config.linux.get_or_insert_with(Default::default)
    }

    fn ns_options(&mut self) -> &mut cri::NamespaceOption {
        self.linux()
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options
            .get_or_insert_with(Default::default)
    }

    pub fn hostname(mut self, h: &str) -> Self {
        self.config.hostname = h.into();
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        if let Some(m) = self.config.metadata.as_mut() {
            m.uid = uid.into();
        }
        self
    }

    pub fn attempt(mut self, attempt: u32) -> Self {
        if let Some(m) = self.config.metadata.as_mut() {
            m.attempt = attempt;
        }
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.config.labels.insert(k.into(), v.into());
        self
    }

    pub fn log_directory(mut self, dir: &str) -> Self {
        self.config.log_directory = dir.into();
        self
    }

    pub fn dns(mut self, servers: &[&str], searches: &[&str], options: &[&str]) -> Self {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        self.config.dns_config = Some(cri::DnsConfig {
            servers: v(servers),
            searches: v(searches),
            options: v(options),
        });
        self
    }

    /// Publishes TCP `container_port` on `host_port` (every host address).
    pub fn tcp_port(mut self, container_port: u16, host_port: u16) -> Self {
        self.config.port_mappings.push(cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: container_port.into(),
            host_port: host_port.into(),
            host_ip: String::new(),
        });
        self
    }

    pub fn sysctl(mut self, k: &str, v: &str) -> Self {
        self.linux().sysctls.insert(k.into(), v.into());
        self
    }

    pub fn cgroup_parent(mut self, p: &str) -> Self {
        self.linux().cgroup_parent = p.into();
        self
    }

    /// `namespace_options.network = NODE`: the pod uses the host's network. Like the
    /// kubelet, no hostname is sent for such a pod (it would rename the node).
    pub fn host_network(mut self) -> Self {
        self.ns_options().network = cri::NamespaceMode::Node as i32;
        self.config.hostname.clear();
        self
    }

    /// `namespace_options.userns_options` with `mode` and (container, host, length) maps.
    pub fn userns(
        mut self,
        mode: cri::NamespaceMode,
        uids: &[(u32, u32, u32)],
        gids: &[(u32, u32, u32)],
    ) -> Self {
        self.ns_options().userns_options = Some(userns_options(mode, uids, gids));
        self
    }

    pub fn pid_mode(mut self, m: cri::NamespaceMode) -> Self {
        self.ns_options().pid = m as i32;
        self
    }

    pub fn build(&self) -> cri::PodSandboxConfig {
        self.config.clone()
    }
}

/// A CRI `UserNamespace` with `mode` and (container, host, length) mappings.
pub fn userns_options(
    mode: cri::NamespaceMode,
    uids: &[(u32, u32, u32)],
    gids: &[(u32, u32, u32)],
) -> cri::UserNamespace {
    let maps = |v: &[(u32, u32, u32)]| {
        v.iter()
            .map(|&(container_id, host_id, length)| cri::IdMapping {
                container_id,
                host_id,
                length,
            })
            .collect()
    };
    cri::UserNamespace {
        mode: mode as i32,
        uids: maps(uids),
        gids: maps(gids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_distinct_and_valid() {
        let a = PodNet::numbered(4_194_303, 0);
        let b = PodNet::numbered(4_194_303, 1);
        assert_ne!(a.bridge, b.bridge);
        assert_ne!(a.subnet, b.subnet);
        assert!(a.bridge.len() <= 15 && a.bridge.contains("berth"), "{a:?}");
        assert_eq!(a.gateway().octets()[3], 1);
        assert!(a.holds(Ipv4Addr::new(a.octets[0], a.octets[1], a.octets[2], 7)));
        assert!(!a.holds(a.gateway()));
        assert_ne!(a.other_subnet(), b.subnet);
        for n in 0..120 {
            let x = PodNet::numbered(1, n);
            assert!(x.octets[2] >= 1 && x.octets[2] <= 120);
            assert!(
                x.other_subnet()
                    .split('.')
                    .nth(2)
                    .is_some_and(|o| o.parse::<u8>().unwrap() > 120)
            );
        }
        let t: toml::Table = a.toml().parse().unwrap();
        assert_eq!(t["network"]["bridge"].as_str(), Some(a.bridge.as_str()));
    }

    #[test]
    fn spec_builds_kubelet_like_configs() {
        let net = PodNet::unique();
        let c = PodSpec::new("web", &net)
            .tcp_port(8080, 30080)
            .sysctl("net.ipv4.ip_unprivileged_port_start", "80")
            .host_network()
            .build();
        assert_eq!(c.metadata.as_ref().unwrap().name, "web");
        assert_eq!(c.port_mappings[0].host_port, 30080);
        let l = c.linux.unwrap();
        assert_eq!(l.cgroup_parent, net.cgroup_parent);
        let ns = l.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
    }
}
