//! The built-in bridge network on the real host (root): pods are `ip netns` namespaces,
//! the bridge is `berthtestN`, subnets 10.213.N.0/24, state in a temp dir. Every test
//! checks that nothing is left (leakcheck) and restores the sysctls it changed.
#![allow(clippy::unwrap_used)]
// The serial guard is held across awaits on purpose: it orders whole tests.
#![allow(clippy::await_holding_lock)]

#[path = "net_support.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use berth_core::config::NetworkConfig;
use berth_core::pod::networks::{NetworkCreate, PodNetwork};
use berth_core::pod::ports::{Network, NetworkRequest, PodError};
use berth_core::pod::record::{PortMapping, Protocol};
use berth_linux::net::{BridgeNetwork, host_veth_name};
use support::*;

const TOOLS: &[&str] = &["ip", "nft", "busybox"];

fn cfg(bridge: &str, subnet: &str, v6: &str) -> NetworkConfig {
    NetworkConfig {
        bridge: bridge.into(),
        subnet: subnet.into(),
        subnet_v6: v6.into(),
        ..NetworkConfig::default()
    }
}

fn pod_id(n: u32) -> String {
    format!("be{n:09x}{}", "0".repeat(53))
}

fn req(n: u32, ns: &TestNetns, ports: Vec<PortMapping>) -> NetworkRequest {
    NetworkRequest {
        pod_id: pod_id(n),
        pod_name: format!("pod{n}"),
        pod_namespace: "default".into(),
        netns: ns.path(),
        port_mappings: ports,
        networks: vec![],
    }
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        protocol: Protocol::Tcp,
        container_port,
        host_port,
        host_ip: None,
    }
}

fn link_exists(name: &str) -> bool {
    sh(&format!("ip link show {name}")).0
}

fn table_exists(table: &str) -> bool {
    sh(&format!("nft list table inet {table}")).0
}

fn sysctls() -> SysctlGuard {
    SysctlGuard::save(&[
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ])
}

macro_rules! skip_if_unfit {
    () => {
        if let Some(why) = skip_reason(TOOLS) {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn held(state: &Path) -> usize {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("ipam-v4.json")).unwrap()).unwrap();
    v["current"]["held"].as_object().unwrap().len()
        + v["draining"].as_array().map_or(0, |d| {
            d.iter().map(|a| a["held"].as_object().unwrap().len()).sum()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_talk_publish_ports_and_survive_restart() {
    skip_if_unfit!();
    let _serial = serial();
    let _sysctls = sysctls();
    let _cleanup = NetCleanup("berthtest0");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("network");
    let c = cfg("berthtest0", "10.213.0.0/24", "");
    let net = BridgeNetwork::new(&c, state.clone()).unwrap();
    assert_eq!(net.ready(), Ok(()));
    let (a, b) = (TestNetns::new("a"), TestNetns::new("b"));
    let ra = req(1, &a, vec![tcp(18080, 8080), tcp(0, 9)]);
    let rb = req(2, &b, vec![]);

    let ipa = net.setup(&ra).await.unwrap().ip.unwrap();
    let ipb = net.setup(&rb).await.unwrap().ip.unwrap();
    assert_ne!(ipa, ipb);
    let subnet: berth_core::pod::ipam::Subnet = "10.213.0.0/24".parse().unwrap();
    assert!(subnet.contains(ipa) && subnet.contains(ipb));
    assert!(link_exists("berthtest0") && link_exists(&host_veth_name(&ra.pod_id)));
    assert!(a.ping(&ipb.to_string()), "pod a cannot ping pod b");
    assert!(b.ping(&ipa.to_string()), "pod b cannot ping pod a");
    assert!(a.ping("10.213.0.1"), "pod a cannot ping the gateway");
    assert!(
        a.exec("ip -o addr show dev eth0")
            .1
            .contains(&format!("{ipa}/24"))
    );
    assert!(
        a.exec("ip route")
            .1
            .contains("default via 10.213.0.1 dev eth0")
    );

    // A published port: from 127.0.0.1, from a node address, and from another pod
    // through the gateway (prerouting DNAT + hairpin masquerade).
    let www = tempfile::tempdir().unwrap();
    let _server = a.serve(8080, "hello-from-a", www.path());
    let lo: SocketAddr = "127.0.0.1:18080".parse().unwrap();
    let body = tokio::task::spawn_blocking(move || http_get(lo))
        .await
        .unwrap();
    assert!(
        body.as_deref().unwrap_or_default().contains("hello-from-a"),
        "127.0.0.1: {body:?}"
    );
    // A node address of our own (the dummy module may be missing: a veth pair instead).
    let (ok, out) = sh(
        "ip link add berthdummy0 type veth peer name berthdummy1 && ip addr add 10.213.99.1/32 dev berthdummy0 && ip link set berthdummy0 up",
    );
    assert!(ok, "{out}");
    let node: SocketAddr = "10.213.99.1:18080".parse().unwrap();
    let body = tokio::task::spawn_blocking(move || http_get(node))
        .await
        .unwrap();
    sh("ip link del berthdummy0");
    assert!(
        body.as_deref().unwrap_or_default().contains("hello-from-a"),
        "node address: {body:?}"
    );
    let out = b.http_get("10.213.0.1", 18080);
    assert!(
        out.contains("hello-from-a"),
        "from pod b via the gateway: {out}"
    );

    // Another pod asking for the same host port is refused, naming the owner; it holds
    // nothing afterwards.
    let cns = TestNetns::new("c");
    let rc = req(3, &cns, vec![tcp(18080, 80)]);
    match net.setup(&rc).await {
        Err(PodError::InvalidArgument(m)) => {
            assert!(m.contains("18080") && m.contains(&ra.pod_id), "{m}")
        }
        other => panic!("expected a port conflict, got {other:?}"),
    }
    assert_eq!(held(&state), 2);

    // berthd restarts: same state dir, same addresses; a retry gives the same IP; a new
    // pod gets a new one.
    drop(net);
    let net = BridgeNetwork::new(&c, state.clone()).unwrap();
    assert_eq!(net.setup(&ra).await.unwrap().ip, Some(ipa));
    let ipc = net.setup(&req(3, &cns, vec![])).await.unwrap().ip.unwrap();
    assert!(ipc != ipa && ipc != ipb);
    assert!(
        cns.ping(&ipa.to_string()),
        "after the retry, pod a is reachable again"
    );
    // The retried setup re-creates pod a's link: give the first connection a few tries
    // (seen failing once in three runs right after the retry; the cause is not pinned down).
    let body = tokio::task::spawn_blocking(move || {
        (0..10).find_map(|_| {
            let b = http_get(lo).filter(|b| b.contains("hello-from-a"));
            if b.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            b
        })
    })
    .await
    .unwrap();
    assert!(
        body.as_deref().unwrap_or_default().contains("hello-from-a"),
        "after restart: {body:?}"
    );

    // Teardown, twice; the netns of one pod is already gone. After the last pod, nothing.
    drop(_server);
    net.teardown(&rb).await.unwrap();
    assert!(!link_exists(&host_veth_name(&rb.pod_id)));
    assert!(
        link_exists("berthtest0"),
        "the bridge stays while pods remain"
    );
    drop(b);
    net.teardown(&rb).await.unwrap();
    for r in [&ra, &req(3, &cns, vec![])] {
        net.teardown(r).await.unwrap();
        net.teardown(r).await.unwrap();
    }
    assert!(
        link_exists("berthtest0") && table_exists(&net.nft_table()),
        "kept after the last pod"
    );
    // The bridge and table stay after the last pod (issue 12); removing them is explicit.
    assert!(net.remove_if_unused().await.unwrap());
    assert!(!link_exists("berthtest0"), "bridge left");
    assert!(!table_exists(&net.nft_table()), "nft table left");
    assert_eq!(held(&state), 0);
    drop((a, cns));
    assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_cycles_leave_nothing() {
    skip_if_unfit!();
    let _serial = serial();
    let _sysctls = sysctls();
    let _cleanup = NetCleanup("berthtest1");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("network");
    let net = BridgeNetwork::new(&cfg("berthtest1", "10.213.1.0/24", ""), state.clone()).unwrap();
    let ns = TestNetns::new("cycle");
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = fds();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..50 {
        let r = req(100 + i, &ns, vec![tcp(18181, 80)]);
        let ip = net.setup(&r).await.unwrap().ip.unwrap();
        seen.insert(ip);
        net.teardown(&r).await.unwrap();
    }
    // Round-robin allocation: 50 different addresses, none held afterwards.
    assert_eq!(seen.len(), 50);
    assert_eq!(held(&state), 0);
    // The bridge and table stay after the last pod (issue 12); removing them is explicit.
    assert!(net.remove_if_unused().await.unwrap());
    assert!(!link_exists("berthtest1") && !table_exists(&net.nft_table()));
    // Concurrent setups (berthd serves RPCs in parallel): distinct addresses, all working.
    let spaces: Vec<TestNetns> = (0..4).map(|i| TestNetns::new(&format!("par{i}"))).collect();
    let reqs: Vec<NetworkRequest> = spaces
        .iter()
        .enumerate()
        .map(|(i, ns)| req(150 + i as u32, ns, vec![tcp(18200 + i as u16, 80)]))
        .collect();
    let ips: std::collections::BTreeSet<IpAddr> =
        futures::future::join_all(reqs.iter().map(|r| net.setup(r)))
            .await
            .into_iter()
            .map(|r| r.unwrap().ip.unwrap())
            .collect();
    assert_eq!(ips.len(), 4);
    for ns in &spaces {
        assert!(ns.ping("10.213.1.1"), "{} reaches the gateway", ns.name);
    }
    for r in futures::future::join_all(reqs.iter().map(|r| net.teardown(r))).await {
        r.unwrap();
    }
    // The bridge and table stay after the last pod (issue 12); removing them is explicit.
    assert!(net.remove_if_unused().await.unwrap());
    assert!(!link_exists("berthtest1") && !table_exists(&net.nft_table()));
    drop(spaces);
    let after = fds();
    assert!(
        after <= before + 2,
        "file descriptors leak: {before} → {after}"
    );
    drop(ns);
    assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_setup_rolls_back() {
    skip_if_unfit!();
    let _serial = serial();
    let _sysctls = sysctls();
    let _cleanup = NetCleanup("berthtest2");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("network");
    let net = BridgeNetwork::new(&cfg("berthtest2", "10.213.2.0/24", ""), state.clone()).unwrap();
    let r = NetworkRequest {
        pod_id: pod_id(200),
        pod_name: "x".into(),
        pod_namespace: "default".into(),
        netns: tmp.path().join("no-such-netns"),
        port_mappings: vec![tcp(18282, 80)],
        networks: vec![],
    };
    let e = net.setup(&r).await.unwrap_err();
    assert!(e.to_string().contains("no-such-netns"), "{e}");
    assert_eq!(held(&state), 0);
    net.remove_if_unused().await.unwrap();
    assert!(!link_exists("berthtest2") && !link_exists(&host_veth_name(&r.pod_id)));
    assert!(!table_exists(&net.nft_table()));
    // A host address of a family the pod has no address of is the caller's mistake.
    let ns = TestNetns::new("rb");
    let mut bad = req(201, &ns, vec![tcp(18283, 80)]);
    bad.port_mappings[0].host_ip = Some("::1".parse().unwrap());
    assert!(matches!(
        net.setup(&bad).await,
        Err(PodError::InvalidArgument(_))
    ));
    drop(ns);
    assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_cidr_change_keeps_old_pods_working() {
    skip_if_unfit!();
    let _serial = serial();
    let _sysctls = sysctls();
    let _cleanup = NetCleanup("berthtest3");
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNetwork::new(
        &cfg("berthtest3", "10.213.3.0/24", ""),
        tmp.path().join("network"),
    )
    .unwrap();
    let (a, b, c) = (
        TestNetns::new("ca"),
        TestNetns::new("cb"),
        TestNetns::new("cc"),
    );
    let ipa = net.setup(&req(301, &a, vec![])).await.unwrap().ip.unwrap();
    net.set_pod_cidr("10.213.4.0/24".parse().unwrap())
        .await
        .unwrap();
    let ipb = net.setup(&req(302, &b, vec![])).await.unwrap().ip.unwrap();
    assert!(
        ipa.to_string().starts_with("10.213.3.") && ipb.to_string().starts_with("10.213.4."),
        "{ipa} {ipb}"
    );
    assert!(
        a.ping("10.213.3.1") && b.ping("10.213.4.1"),
        "each pod reaches its gateway"
    );
    assert!(
        a.ping(&ipb.to_string()),
        "old and new pods reach each other (via the node)"
    );
    net.teardown(&req(301, &a, vec![])).await.unwrap();
    let ipc = net.setup(&req(303, &c, vec![])).await.unwrap().ip.unwrap();
    assert!(ipc.to_string().starts_with("10.213.4."));
    let (_, addrs) = sh("ip -o addr show dev berthtest3");
    assert!(
        addrs.contains("10.213.4.1/24") && !addrs.contains("10.213.3.1"),
        "{addrs}"
    );
    net.teardown(&req(302, &b, vec![])).await.unwrap();
    net.teardown(&req(303, &c, vec![])).await.unwrap();
    // The bridge and table stay after the last pod (issue 12); removing them is explicit.
    assert!(net.remove_if_unused().await.unwrap());
    assert!(!link_exists("berthtest3"));
    drop((a, b, c));
    assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack() {
    skip_if_unfit!();
    if !Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("skipped: no IPv6");
        return;
    }
    let _serial = serial();
    let _sysctls = sysctls();
    let _cleanup = NetCleanup("berthtest5");
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNetwork::new(
        &cfg("berthtest5", "10.213.5.0/24", "fd00:b3::/64"),
        tmp.path().join("network"),
    )
    .unwrap();
    let (a, b) = (TestNetns::new("6a"), TestNetns::new("6b"));
    let ra = req(501, &a, vec![tcp(18585, 8080)]);
    let rb = req(502, &b, vec![]);
    let res_a = net.setup(&ra).await.unwrap();
    let res_b = net.setup(&rb).await.unwrap();
    assert!(res_a.ip.unwrap().is_ipv4());
    let v6a: IpAddr = res_a.additional_ips[0];
    let v6b: IpAddr = res_b.additional_ips[0];
    assert!(v6a.is_ipv6() && v6b.is_ipv6() && v6a != v6b);
    assert!(b.ping(&v6a.to_string()), "IPv6 pod to pod");
    assert!(a.ping("fd00:b3::1"), "IPv6 gateway");
    assert!(a.exec("ip -6 route").1.contains("default via fd00:b3::1"));
    // The published port answers over IPv6 too (DNAT to the pod's IPv6 address).
    let www = tempfile::tempdir().unwrap();
    let _server = a.serve(8080, "v6-hello", www.path());
    let out = b.http_get("fd00:b3::1", 18585);
    assert!(out.contains("v6-hello"), "{out}");
    drop(_server);
    net.teardown(&ra).await.unwrap();
    net.teardown(&rb).await.unwrap();
    // The bridge and table stay after the last pod (issue 12); removing them is explicit.
    assert!(net.remove_if_unused().await.unwrap());
    assert!(!link_exists("berthtest5") && !table_exists(&net.nft_table()));
    drop((a, b));
    assert_no_leaks();
}

/// Deletes named networks' bridges and tables left by a failed test.
struct NamedCleanup(Vec<String>);

impl Drop for NamedCleanup {
    fn drop(&mut self) {
        for b in &self.0 {
            sh(&format!(
                "ip link del {b} 2>/dev/null; nft delete table inet berth-{b} 2>/dev/null"
            ));
        }
        sh(
            "for l in $(ip -o link show | awk -F': ' '{print $2}' | grep -E '^bthv[0-9]+be' | cut -d@ -f1); do ip link del $l; done",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_networks_connect_isolate_and_reset() {
    skip_if_unfit!();
    let _serial = serial();
    let _sysctls = sysctls();
    let _cleanup = NetCleanup("berthtest5");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("network");
    let net = BridgeNetwork::new(&cfg("berthtest5", "10.213.5.0/24", ""), state.clone()).unwrap();
    let create = |name: &str, subnet: &str| NetworkCreate {
        name: name.into(),
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    };
    let n1 = net
        .create_network(&create("n1", "10.213.6.0/24"))
        .await
        .unwrap();
    let n2 = net
        .create_network(&create("n2", "10.213.7.0/24"))
        .await
        .unwrap();
    let _named = NamedCleanup(vec![n1.bridge.clone(), n2.bridge.clone()]);
    assert!(link_exists(&n1.bridge) && table_exists(&format!("berth-{}", n1.bridge)));
    let e = net
        .create_network(&create("n1", "10.213.8.0/24"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = net
        .create_network(&create("n3", "10.213.6.128/25"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
    assert_eq!(net.networks().unwrap().len(), 2);

    let on = |n: u32, ns: &TestNetns, id: &str| NetworkRequest {
        networks: vec![PodNetwork {
            id: id.into(),
            aliases: vec![],
        }],
        ..req(n, ns, vec![])
    };
    let (a, b, c) = (
        TestNetns::new("na"),
        TestNetns::new("nb"),
        TestNetns::new("nc"),
    );
    let (ra, rb, rc) = (on(11, &a, &n1.id), on(12, &b, &n1.id), on(13, &c, &n2.id));
    let res_a = net.setup(&ra).await.unwrap();
    let ipb = net.setup(&rb).await.unwrap().ip.unwrap();
    let ipc = net.setup(&rc).await.unwrap().ip.unwrap();
    let att = &res_a.attachments[0];
    assert_eq!(
        (att.network.as_str(), att.ifname.as_str()),
        (n1.id.as_str(), "eth0")
    );
    assert!(att.mac.starts_with("02:42:0a:d5:06:"), "{att:?}");
    assert!(
        a.exec("ip route")
            .1
            .contains("default via 10.213.6.1 dev eth0")
    );
    assert!(a.ping(&ipb.to_string()), "a → b on n1");
    assert!(!a.ping(&ipc.to_string()), "n1 reached n2");

    // c gets eth1 on n1, then loses it.
    let extra = net
        .connect(
            &rc,
            &PodNetwork {
                id: n1.id.clone(),
                aliases: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(extra.ifname, "eth1");
    let ipa = res_a.ip.unwrap().to_string();
    assert!(c.ping(&ipa), "c → a through eth1");
    let e = net.remove_network(&n1.id).await.unwrap_err();
    assert!(e.to_string().contains("active endpoints"), "{e}");
    net.disconnect(&rc.pod_id, &n1.id).await.unwrap();
    assert!(!c.exec("ip link show eth1").0, "eth1 after disconnect");
    assert!(c.exec("ip link show eth0").0, "eth0 stays");

    for r in [&ra, &rb] {
        net.teardown(r).await.unwrap();
    }
    net.remove_network(&n1.id).await.unwrap();
    assert!(!link_exists(&n1.bridge) && !table_exists(&format!("berth-{}", n1.bridge)));
    // reset removes what is left: c's veth, n2, the default bridge.
    let done = net.reset().await.unwrap();
    assert!(done.iter().any(|l| l.contains("named network")), "{done:?}");
    assert!(net.networks().unwrap().is_empty());
    assert!(!link_exists(&n2.bridge) && !link_exists(&host_veth_name(&rc.pod_id)));
    drop((a, b, c));
    assert_no_leaks();
}
