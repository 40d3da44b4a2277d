//! berth's nftables table, rendered whole from the network state and loaded atomically.
//!
//! Why the `nft` tool's JSON interface (libnftables-json(5)) and not netlink or text:
//! the Rust nftables-over-netlink crates are immature (partial expression coverage, no
//! `fib`/`ct`/NAT helpers we could trust), while `nft` is the reference implementation of
//! the kernel's nf_tables protocol. Its JSON input is a documented, versioned schema built
//! here with `serde_json` values: no quoting or escaping of names and comments, no text
//! grammar to get subtly wrong, and `nft -j list` gives the same shape back for checks.
//!
//! Why render the whole table each time: each setup/teardown sends one batch that deletes
//! and re-creates `table inet berth-<bridge>` from the state file. nft applies a batch as
//! one kernel transaction, so rules are never half-updated, a pod's rules disappear exactly
//! when its entry leaves the state (no rule handles to track, nothing left by a crash
//! between steps), and conntrack entries of established flows are untouched.
//! A node has at most a few hundred pods, so a full render costs well under a millisecond
//! of nft work. The table name carries the bridge so two berthd instances with different
//! bridges (tests side by side) never clobber each other.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_core::pod::ipam::Subnet;
use berth_core::pod::ports::PodError;
use berth_core::pod::record::PortMapping;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// A pod's published ports and the addresses they lead to.
#[derive(Debug, Clone)]
pub(crate) struct PodPorts<'a> {
    pub pod_id: &'a str,
    pub ips: Vec<IpAddr>,
    pub ports: &'a [PortMapping],
}

/// What traffic of the bridge's pods may be forwarded (Docker's isolation chains).
#[derive(Debug, Clone, Default)]
pub(crate) struct Forwarding {
    /// No traffic to or from other interfaces, no masquerade (`--internal`).
    pub internal: bool,
    /// Interfaces (a trailing `*` is nft's prefix wildcard) the bridge's pods must not
    /// reach: the other pod networks' bridges.
    pub isolated_from: Vec<String>,
}

pub(crate) fn table_name(bridge: &str) -> String {
    format!("berth-{bridge}")
}

/// The `nft -j -f -` batch that replaces berth's table with one for `subnets` and `pods`.
pub(crate) fn render(
    bridge: &str,
    subnets: &[Subnet],
    pods: &[PodPorts<'_>],
    fwd: &Forwarding,
) -> Value {
    let table = table_name(bridge);
    let t = json!({"family": "inet", "name": table});
    let mut cmds = vec![
        // add + delete + add: "delete" alone fails when the table does not exist yet.
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
        json!({"add": {"table": t}}),
    ];
    let base = |name: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": "inet", "table": table, "name": name,
            "type": "nat", "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    cmds.push(json!({"add": {"chain": {"family": "inet", "table": table, "name": "hostports"}}}));
    cmds.push(base("prerouting", "prerouting", -100));
    cmds.push(base("output", "output", -100));
    cmds.push(base("postrouting", "postrouting", 100));
    let rule = |chain: &str, expr: Vec<Value>, comment: Option<String>| {
        let mut r = json!({"family": "inet", "table": table, "chain": chain, "expr": expr});
        if let Some(c) = comment {
            r["comment"] = Value::String(c);
        }
        json!({"add": {"rule": r}})
    };
    // Published ports answer on every local address (the node's own and 127.0.0.1), from
    // outside (prerouting) and from the node itself (output).
    let local = json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}});
    for chain in ["prerouting", "output"] {
        cmds.push(rule(
            chain,
            vec![local.clone(), json!({"jump": {"target": "hostports"}})],
            None,
        ));
    }
    for pod in pods {
        for m in pod.ports {
            for ip in &pod.ips {
                if let Some(expr) = dnat_expr(m, *ip) {
                    cmds.push(rule("hostports", expr, Some(format!("pod {}", pod.pod_id))));
                }
            }
        }
    }
    let oif = |op: &str| json!({"match": {"op": op, "left": {"meta": {"key": "oifname"}}, "right": bridge}});
    let iif = |op: &str| json!({"match": {"op": op, "left": {"meta": {"key": "iifname"}}, "right": bridge}});
    // Forwarding policy: a filter chain of its own, only when there is something to drop.
    if fwd.internal || !fwd.isolated_from.is_empty() {
        cmds.push(
            json!({"add": {"chain": {"family": "inet", "table": table, "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}),
        );
    }
    if fwd.internal {
        cmds.push(rule(
            "forward",
            vec![iif("=="), oif("!="), json!({"drop": null})],
            None,
        ));
        cmds.push(rule(
            "forward",
            vec![oif("=="), iif("!="), json!({"drop": null})],
            None,
        ));
    }
    for other in &fwd.isolated_from {
        let to =
            json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": other}});
        cmds.push(rule(
            "forward",
            vec![iif("=="), to, oif("!="), json!({"drop": null})],
            None,
        ));
    }
    for s in subnets.iter().filter(|_| !fwd.internal) {
        let saddr = json!({"match": {"op": "==", "left": {"payload": {"protocol": l3(s.network()), "field": "saddr"}},
            "right": {"prefix": {"addr": s.network().to_string(), "len": s.prefix()}}}});
        // Pods reaching beyond the node leave with the node's address.
        cmds.push(rule(
            "postrouting",
            vec![saddr.clone(), oif("!="), json!({"masquerade": null})],
            None,
        ));
        // A pod reaching a published port (of another pod, or its own) through a node
        // address: without SNAT the answer would go pod to pod on the bridge, un-NATed.
        let dnatted =
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}});
        cmds.push(rule(
            "postrouting",
            vec![dnatted, saddr, oif("=="), json!({"masquerade": null})],
            None,
        ));
    }
    // 127.0.0.1:hostport → pod (output DNAT) leaves through the bridge with a loopback
    // source (allowed by route_localnet on the bridge); the pod must see the bridge address.
    let lo = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
        "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}});
    cmds.push(rule(
        "postrouting",
        vec![lo, oif("=="), json!({"masquerade": null})],
        None,
    ));
    json!({"nftables": cmds})
}

fn l3(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

/// `[ip daddr HOST_IP | meta nfproto F] PROTO dport HOST_PORT dnat F to POD_IP:PORT`, or
/// None when the mapping's host address is of the other family than `pod_ip`.
fn dnat_expr(m: &PortMapping, pod_ip: IpAddr) -> Option<Vec<Value>> {
    let fam = l3(pod_ip);
    let first = match m.host_ip {
        Some(h) if h.is_ipv4() != pod_ip.is_ipv4() => return None,
        Some(h) => {
            json!({"match": {"op": "==", "left": {"payload": {"protocol": fam, "field": "daddr"}}, "right": h.to_string()}})
        }
        None => json!({"match": {"op": "==", "left": {"meta": {"key": "nfproto"}},
            "right": if pod_ip.is_ipv4() { "ipv4" } else { "ipv6" }}}),
    };
    Some(vec![
        first,
        json!({"match": {"op": "==", "left": {"payload": {"protocol": m.protocol.as_str(), "field": "dport"}}, "right": m.host_port}}),
        json!({"dnat": {"family": fam, "addr": pod_ip.to_string(), "port": m.container_port}}),
    ])
}

/// The batch that removes berth's table (and succeeds when it is already gone).
pub(crate) fn render_delete(bridge: &str) -> Value {
    let t = json!({"family": "inet", "name": table_name(bridge)});
    json!({"nftables": [{"add": {"table": t}}, {"delete": {"table": t}}]})
}

/// Finds the `nft` binary: PATH first, then the usual sbin directories (daemons started
/// with a reduced PATH still find it).
pub(crate) fn find_nft() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
}

/// Runs `nft -j -f -` with `batch` on stdin.
pub(crate) async fn apply(nft: &Path, batch: &Value) -> Result<(), PodError> {
    let fail = |m: String| PodError::failed("nftables", m);
    let mut child = tokio::process::Command::new(nft)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("running {}: {e}", nft.display())))?;
    let input = batch.to_string();
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| fail(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "nft -j -f - failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::pod::record::Protocol;

    #[test]
    fn renders_dnat_per_family_and_masquerade() {
        let ports = [
            PortMapping {
                protocol: Protocol::Tcp,
                container_port: 80,
                host_port: 8080,
                host_ip: None,
            },
            PortMapping {
                protocol: Protocol::Udp,
                container_port: 53,
                host_port: 5353,
                host_ip: Some("127.0.0.1".parse().unwrap()),
            },
        ];
        let pods = [PodPorts {
            pod_id: "abc",
            ips: vec!["10.1.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            ports: &ports,
        }];
        let v = render(
            "br0",
            &["10.1.0.0/24".parse().unwrap()],
            &pods,
            &Forwarding::default(),
        );
        let text = v.to_string();
        assert!(
            text.contains(r#""dnat":{"addr":"10.1.0.2","family":"ip","port":80}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""dnat":{"addr":"fd00::2","family":"ip6","port":80}"#),
            "{text}"
        );
        // The v4-only host address gives no v6 rule.
        assert_eq!(text.matches(r#""port":53"#).count(), 1, "{text}");
        assert!(text.contains(r#""comment":"pod abc""#));
        assert!(text.contains(r#""name":"berth-br0""#));
        assert_eq!(text.matches("masquerade").count(), 3);
        assert!(!text.contains("forward"));
    }

    #[test]
    fn renders_isolation_and_internal() {
        let fwd = Forwarding {
            internal: true,
            isolated_from: vec!["bthn*".into()],
        };
        let text = render("bthn1", &["172.18.0.0/16".parse().unwrap()], &[], &fwd).to_string();
        assert_eq!(text.matches("\"drop\"").count(), 3, "{text}");
        assert!(text.contains(r#""right":"bthn*""#), "{text}");
        // Internal: only the loopback rule masquerades.
        assert_eq!(text.matches("masquerade").count(), 1, "{text}");
    }
}
