//! Validation of a pod's published ports against its own addresses and other pods'.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_core::pod::ports::PodError;
use berth_core::pod::record::PortMapping;

use super::state::PodEntry;

/// Drops unpublished mappings (host port 0), treats an unspecified host address
/// (0.0.0.0, ::) as "every address", and removes duplicates.
pub(crate) fn normalize(ports: &[PortMapping]) -> Vec<PortMapping> {
    let mut out: Vec<PortMapping> = Vec::new();
    for m in ports.iter().filter(|m| m.host_port != 0) {
        let mut m = m.clone();
        if m.host_ip.is_some_and(|ip| ip.is_unspecified()) {
            m.host_ip = None;
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

fn overlaps(a: &PortMapping, b: &PortMapping) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && match (a.host_ip, b.host_ip) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

fn describe(m: &PortMapping) -> String {
    match m.host_ip {
        Some(ip) if ip.is_ipv6() => format!("[{ip}]:{}/{}", m.host_port, m.protocol.as_str()),
        Some(ip) => format!("{ip}:{}/{}", m.host_port, m.protocol.as_str()),
        None => format!("{}/{}", m.host_port, m.protocol.as_str()),
    }
}

/// Refuses mappings that clash with each other, with another pod's, or whose host address
/// family the pod has no address of.
pub(crate) fn check(
    pod_id: &str,
    ports: &[PortMapping],
    pod_ips: &[IpAddr],
    others: &BTreeMap<String, PodEntry>,
) -> Result<(), PodError> {
    for (i, m) in ports.iter().enumerate() {
        if let Some(h) = m.host_ip
            && !pod_ips.iter().any(|ip| ip.is_ipv4() == h.is_ipv4())
        {
            return Err(PodError::InvalidArgument(format!(
                "port mapping {}: the pod has no {} address to forward to",
                describe(m),
                if h.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
        if let Some(o) = ports[..i]
            .iter()
            .find(|o| overlaps(m, o) && o.container_port != m.container_port)
        {
            return Err(PodError::InvalidArgument(format!(
                "host port {} is mapped twice (to container ports {} and {})",
                describe(m),
                o.container_port,
                m.container_port
            )));
        }
        for (owner, entry) in others.iter().filter(|(id, _)| id.as_str() != pod_id) {
            if let Some(o) = entry.ports.iter().find(|o| overlaps(m, o)) {
                return Err(PodError::InvalidArgument(format!(
                    "host port {} is already published by pod {owner} (as {})",
                    describe(m),
                    describe(o)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::pod::record::Protocol;

    fn pm(proto: Protocol, host_port: u16, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            protocol: proto,
            container_port: 80,
            host_port,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn conflicts_name_the_owner() {
        let mut others = BTreeMap::new();
        others.insert(
            "other".to_string(),
            PodEntry {
                veth: "bthother".into(),
                ports: vec![pm(Protocol::Tcp, 8080, None)],
                ifname: String::new(),
            },
        );
        let ips = ["10.0.0.2".parse().unwrap()];
        let e = check(
            "me",
            &[pm(Protocol::Tcp, 8080, Some("127.0.0.1"))],
            &ips,
            &others,
        )
        .unwrap_err();
        assert!(
            matches!(&e, PodError::InvalidArgument(m) if m.contains("8080") && m.contains("other")),
            "{e}"
        );
        assert!(check("me", &[pm(Protocol::Udp, 8080, None)], &ips, &others).is_ok());
        // Its own earlier entry (a retry) is not a conflict.
        assert!(check("other", &[pm(Protocol::Tcp, 8080, None)], &ips, &others).is_ok());
        assert!(check("me", &[pm(Protocol::Tcp, 1, Some("::1"))], &ips, &others).is_err());
    }

    #[test]
    fn normalize_drops_unpublished_and_unspecified() {
        let n = normalize(&[
            pm(Protocol::Tcp, 0, None),
            pm(Protocol::Tcp, 1, Some("0.0.0.0")),
            pm(Protocol::Tcp, 1, None),
        ]);
        assert_eq!(n, vec![pm(Protocol::Tcp, 1, None)]);
    }
}
