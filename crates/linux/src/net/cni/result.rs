//! The addresses in a CNI result, in any spec version.

use std::net::IpAddr;

use serde_json::Value;

fn parse_cidr_ip(s: &str) -> Option<IpAddr> {
    s.split('/').next()?.parse().ok()
}

/// The pod's addresses: those on interfaces inside the sandbox (0.3.0+ results say which),
/// IPv4 first, in result order otherwise.
pub(crate) fn pod_ips(result: &Value) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    if let Some(list) = result.get("ips").and_then(Value::as_array) {
        let ifaces = result.get("interfaces").and_then(Value::as_array);
        for entry in list {
            let in_sandbox = match (entry.get("interface").and_then(Value::as_u64), ifaces) {
                (Some(i), Some(ifs)) => ifs
                    .get(i as usize)
                    .and_then(|x| x.get("sandbox"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
                _ => true,
            };
            if in_sandbox
                && let Some(ip) = entry
                    .get("address")
                    .and_then(Value::as_str)
                    .and_then(parse_cidr_ip)
            {
                ips.push(ip);
            }
        }
    } else {
        // 0.1.0 / 0.2.0: {"ip4": {"ip": "10.0.0.2/24"}, "ip6": {...}}
        for key in ["ip4", "ip6"] {
            if let Some(ip) = result
                .get(key)
                .and_then(|x| x.get("ip"))
                .and_then(Value::as_str)
                .and_then(parse_cidr_ip)
            {
                ips.push(ip);
            }
        }
    }
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_sandbox_addresses_ipv4_first() {
        let r = json!({
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.0.0.1/24", "interface": 0},
                {"address": "10.0.0.5/24", "interface": 2}
            ]
        });
        let ips = pod_ips(&r);
        assert_eq!(
            ips,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(
            pod_ips(&json!({"ip4": {"ip": "10.1.0.2/16"}})),
            vec!["10.1.0.2".parse::<IpAddr>().unwrap()]
        );
    }
}
