//! Named pod networks besides the default one (Docker's user-defined networks): what a
//! network is, where a pod is attached, and the choice of a free subnet for a new network.
//! Pure; the network edge (berth-linux) persists the definitions and builds the bridges.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::ipam::Subnet;

/// A network a pod may be attached to, besides the default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// The Linux bridge that carries it.
    pub bridge: String,
    pub subnet: Subnet,
    /// The bridge's address, the pods' default route (and where the network's DNS server
    /// listens).
    pub gateway: IpAddr,
    /// No route beyond the network: no masquerade, no forwarding to other interfaces.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
}

/// What `create_network` is asked for; the edge fills in the id, bridge and subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkCreate {
    pub name: String,
    /// None: a free subnet from the pool (see [`pick_subnet`]).
    pub subnet: Option<Subnet>,
    /// None: the subnet's first host address.
    pub gateway: Option<IpAddr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// One network a pod asks to be attached to, with the extra names it answers to there
/// (Docker's aliases; served by the network's name server, not used by the edge).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// The network's id; "" is the default network.
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A pod's network options beyond its namespace mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetOptions {
    /// The networks of a pod with its own network namespace, in interface order (eth0
    /// first). Empty: the default network alone.
    #[serde(default)]
    pub networks: Vec<PodNetwork>,
    /// The id of a pod whose network namespace this pod joins instead of making one
    /// (Docker's `--network container:<x>`); that pod owns the network.
    #[serde(default)]
    pub join: Option<String>,
    /// Lines added to the pod's /etc/hosts (`IP<TAB>name alias…`: Docker's links).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

/// Where a pod is attached to one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's id; "" is the default network.
    pub network: String,
    /// The interface inside the pod (eth0, eth1, …).
    pub ifname: String,
    pub ip: Option<IpAddr>,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    /// The pod-side interface's MAC address (derived from its IPv4 address, as Docker's).
    pub mac: String,
}

/// Docker's MAC scheme: 02:42 then the four bytes of the IPv4 address. Unique per network
/// without keeping state, and recognisable in `ip link`.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The first subnet of the pool that overlaps none of `used` (berth's own subnets and the
/// node's routes): 172.18.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20 … 192.168.240.0/20,
/// as dockerd's default address pools (172.17/16 is left to a Docker on the same node).
pub fn pick_subnet(used: &[Subnet]) -> Option<Subnet> {
    let candidates = (18..=31u8)
        .map(|b| format!("172.{b}.0.0/16"))
        .chain((0..16u8).map(|i| format!("192.168.{}.0/20", i * 16)));
    candidates
        .filter_map(|c| c.parse::<Subnet>().ok())
        .find(|c| !used.iter().any(|u| overlaps(c, u)))
}

/// Whether two subnets share an address.
pub fn overlaps(a: &Subnet, b: &Subnet) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    #[test]
    fn picks_the_first_free_subnet() {
        assert_eq!(pick_subnet(&[]), Some(s("172.18.0.0/16")));
        let used = [s("172.18.5.0/24"), s("10.88.0.0/16"), s("172.19.0.0/16")];
        assert_eq!(pick_subnet(&used), Some(s("172.20.0.0/16")));
        // A wide route (172.16.0.0/12) covers the whole 172 range.
        assert_eq!(
            pick_subnet(&[s("172.16.0.0/12")]),
            Some(s("192.168.0.0/20"))
        );
        let all: Vec<Subnet> = vec![s("172.16.0.0/12"), s("192.168.0.0/16")];
        assert_eq!(pick_subnet(&all), None);
    }

    #[test]
    fn macs_follow_the_address() {
        let m = mac_of("172.18.0.2".parse().unwrap());
        assert_eq!(mac_text(m), "02:42:ac:12:00:02");
    }
}
