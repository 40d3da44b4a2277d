//! CNI mode with the Debian containernetworking-plugins (bridge, host-local, portmap,
//! loopback). The whole test runs in a private network namespace of its own (the test
//! thread unshares it and runs a current-thread runtime, so plugins and connections all
//! live there): the plugins' bridge, veths and iptables chains vanish with it, and the
//! host's namespace is never touched.
#![allow(clippy::unwrap_used)]
// The serial guard is held across awaits on purpose: it orders whole tests.
#![allow(clippy::await_holding_lock)]

#[path = "net_support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;

use berth_core::config::NetworkConfig;
use berth_core::pod::ports::{Network, NetworkRequest};
use berth_core::pod::record::{PortMapping, Protocol};
use berth_linux::net::CniNetwork;
use support::*;

const PLUGINS: &[&str] = &["bridge", "host-local", "portmap", "loopback"];

fn req(id: &str, ns: &TestNetns, ports: Vec<PortMapping>) -> NetworkRequest {
    NetworkRequest {
        pod_id: id.into(),
        pod_name: format!("pod-{id}"),
        pod_namespace: "default".into(),
        netns: ns.path(),
        port_mappings: ports,
        networks: vec![],
    }
}

fn conflist(ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "berthtest",
        "plugins": [
            {"type": "bridge", "bridge": "berthcni0", "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.214.0.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

#[test]
fn cni_plugins_connect_and_disconnect_pods() {
    if let Some(why) = skip_reason(&["ip", "iptables", "busybox"]) {
        eprintln!("skipped: {why}");
        return;
    }
    if let Some(p) = PLUGINS
        .iter()
        .find(|p| !Path::new("/usr/lib/cni").join(p).exists())
    {
        eprintln!("skipped: needs /usr/lib/cni/{p} (Debian containernetworking-plugins)");
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Runs on its own thread: the unshare below must not outlive the test on a thread
    // the harness reuses.
    let dir = tmp.path().to_path_buf();
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        let (ok, out) = sh("ip link set lo up");
        assert!(ok, "{out}");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario(&dir));
    })
    .join()
    .expect("scenario");
    assert_no_leaks();
}

async fn scenario(tmp: &Path) {
    let conf_dir = tmp.join("net.d");
    let ipam_dir = tmp.join("ipam");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let cfg = NetworkConfig {
        cni_conf_dir: conf_dir.clone(),
        cni_bin_dir: "/usr/lib/cni".into(),
        ..NetworkConfig::default()
    };
    let state = tmp.join("network");
    let net = CniNetwork::new(&cfg, state.clone()).unwrap();
    let not_ready = net.ready().unwrap_err();
    assert!(not_ready.contains("no CNI network config"), "{not_ready}");
    // The lexicographically first file wins; the second is broken on purpose.
    std::fs::write(conf_dir.join("10-berthtest.conflist"), conflist(&ipam_dir)).unwrap();
    std::fs::write(conf_dir.join("20-broken.conflist"), "{").unwrap();
    assert_eq!(net.ready(), Ok(()));

    let (a, b) = (TestNetns::new("cni-a"), TestNetns::new("cni-b"));
    let port = PortMapping {
        protocol: Protocol::Tcp,
        container_port: 8080,
        host_port: 18090,
        host_ip: None,
    };
    let ra = req("cnia", &a, vec![port]);
    let rb = req("cnib", &b, vec![]);
    let ipa = net
        .setup(&ra)
        .await
        .unwrap()
        .ip
        .expect("pod a has an address");
    let ipb = net
        .setup(&rb)
        .await
        .unwrap()
        .ip
        .expect("pod b has an address");
    assert!(
        ipa.to_string().starts_with("10.214.0.") && ipa != ipb,
        "{ipa} {ipb}"
    );
    assert!(state.join("cni/cnia.json").exists(), "ADD result cached");
    assert!(
        a.ping(&ipb.to_string()) && b.ping(&ipa.to_string()),
        "pods reach each other"
    );
    assert!(
        a.exec("ip -o link show lo").1.contains("UP"),
        "loopback plugin ran"
    );
    // CHECK on the pod without published ports: Debian's portmap 1.1.1 fails CHECK of an
    // IPv4-only pod with mappings (it looks for IPv6 chains it never made,
    // containernetworking/plugins#819).
    net.check(&rb).await.unwrap();

    // portmap got the mapping through runtimeConfig: pod b reaches pod a's server through
    // the gateway's host port, the node through 127.0.0.1.
    let www = tempfile::tempdir().unwrap();
    let server = a.serve(8080, "cni-hello", www.path());
    let out = b.http_get("10.214.0.1", 18090);
    assert!(out.contains("cni-hello"), "via the gateway: {out}");
    let lo: SocketAddr = "127.0.0.1:18090".parse().unwrap();
    let body = http_get(lo).unwrap_or_default();
    assert!(body.contains("cni-hello"), "via 127.0.0.1: {body}");
    drop(server);

    // DEL uses the cached config even once the directory changed; twice is fine.
    std::fs::remove_file(conf_dir.join("10-berthtest.conflist")).unwrap();
    net.teardown(&ra).await.unwrap();
    net.teardown(&ra).await.unwrap();
    assert!(!state.join("cni/cnia.json").exists());
    drop(b);
    net.teardown(&rb).await.unwrap();
    let leases: Vec<_> = std::fs::read_dir(ipam_dir.join("berthtest"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(leases.is_empty(), "host-local leases left: {leases:?}");
    assert!(!a.exec("ip link show eth0").0, "eth0 removed from the pod");
}
