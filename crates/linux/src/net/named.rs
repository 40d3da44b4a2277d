//! Named networks' definitions (`<state_dir>/networks.json`) and the facts a new one is
//! checked against: the subnets in use by berth and the node's routes.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use berth_core::pod::ipam::Subnet;
use berth_core::pod::networks::{NetworkCreate, NetworkDef, overlaps, pick_subnet};
use berth_core::pod::ports::PodError;

use super::segment::NAMED_BRIDGE_PREFIX;
use super::state::write_json;

const DEFS_FILE: &str = "networks.json";

pub(crate) fn defs_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DEFS_FILE)
}

/// The state directory of a named network's addresses and pods.
pub(crate) fn segment_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("networks").join(id)
}

/// Every named network, by id.
pub(crate) fn load(state_dir: &Path) -> Result<BTreeMap<String, NetworkDef>, PodError> {
    let path = defs_path(state_dir);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            PodError::failed(
                "network state",
                format!(
                    "{}: {e} (fix or remove the file; it lists the named networks)",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(PodError::failed(
            "network state",
            format!("{}: {e}", path.display()),
        )),
    }
}

pub(crate) fn save(state_dir: &Path, defs: &BTreeMap<String, NetworkDef>) -> Result<(), PodError> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| PodError::failed("network state", format!("{}: {e}", state_dir.display())))?;
    write_json(&defs_path(state_dir), defs)
}

/// 64 hex digits from the process's random hasher keys (std's RandomState is seeded from
/// the OS's random source).
fn new_id() -> String {
    (0..4u64)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// The definition for `req`: name free, subnet given (and free) or picked, gateway in it.
/// `used`: every subnet berth or the node's routes already cover.
pub(crate) fn define(
    req: &NetworkCreate,
    defs: &BTreeMap<String, NetworkDef>,
    used: &[Subnet],
    now: i64,
) -> Result<NetworkDef, PodError> {
    let invalid = PodError::InvalidArgument;
    if req.name.is_empty() {
        return Err(invalid("a network needs a name".into()));
    }
    if let Some(d) = defs.values().find(|d| d.name == req.name) {
        return Err(invalid(format!(
            "network with name {} already exists (id {})",
            req.name, d.id
        )));
    }
    let subnet = match req.subnet {
        Some(s) => {
            if !s.is_ipv4() {
                return Err(invalid(format!(
                    "subnet {s}: named networks are IPv4 only"
                )));
            }
            if let Some(u) = used.iter().find(|u| overlaps(&s, u)) {
                return Err(invalid(format!(
                    "subnet {s} overlaps {u}, which a network or a route of the node already uses"
                )));
            }
            s
        }
        None => pick_subnet(used).ok_or_else(|| {
            PodError::failed(
                "network",
                "no free subnet left in 172.18.0.0/16–172.31.0.0/16 and 192.168.0.0/16; give one (--subnet)",
            )
        })?,
    };
    let gateway = match req.gateway {
        Some(g) if !subnet.contains(g) || g == subnet.network() => {
            return Err(invalid(format!(
                "gateway {g} is not a host address of subnet {subnet}"
            )));
        }
        Some(g) => g,
        None => subnet.gateway(),
    };
    let mut id = new_id();
    while defs.contains_key(&id) {
        id = new_id();
    }
    Ok(NetworkDef {
        bridge: format!("{NAMED_BRIDGE_PREFIX}{}", &id[..11]),
        id,
        name: req.name.clone(),
        subnet,
        gateway,
        internal: req.internal,
        labels: req.labels.clone(),
        options: req.options.clone(),
        created_at: now,
    })
}

/// The node's IPv4 routes (from /proc/net/route) as subnets, default routes left out.
pub(crate) fn host_routes() -> Vec<Subnet> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default()
}

fn parse_routes(text: &str) -> Vec<Subnet> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order bytes read as a native integer.
            let prefix = mask.count_ones();
            if prefix == 0 || prefix > 30 {
                return None;
            }
            let ip = IpAddr::V4(Ipv4Addr::from(dest.to_ne_bytes()));
            format!("{ip}/{prefix}").parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_in_host_byte_order() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = parse_routes(text);
        assert_eq!(
            r,
            vec![
                "192.168.2.0/24".parse::<Subnet>().unwrap(),
                "172.17.0.0/16".parse().unwrap()
            ]
        );
    }

    #[test]
    fn define_checks_name_subnet_and_gateway() {
        let mut defs = BTreeMap::new();
        let req = NetworkCreate {
            name: "a".into(),
            ..Default::default()
        };
        let used = ["172.18.0.0/16".parse().unwrap()];
        let d = define(&req, &defs, &used, 1).unwrap();
        assert_eq!(d.subnet, "172.19.0.0/16".parse().unwrap());
        assert_eq!(d.gateway, "172.19.0.1".parse::<IpAddr>().unwrap());
        assert!(d.bridge.starts_with("bthn") && d.bridge.len() == 15);
        defs.insert(d.id.clone(), d);
        let e = define(&req, &defs, &used, 1).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let bad = NetworkCreate {
            name: "b".into(),
            subnet: Some("172.18.3.0/24".parse().unwrap()),
            ..Default::default()
        };
        assert!(define(&bad, &defs, &used, 1).is_err());
        let gw = NetworkCreate {
            name: "c".into(),
            subnet: Some("10.5.0.0/24".parse().unwrap()),
            gateway: Some("10.6.0.1".parse().unwrap()),
            ..Default::default()
        };
        assert!(define(&gw, &defs, &used, 1).is_err());
    }
}
