//! Pod sandboxes over berthd's socket: shared namespaces, the built-in bridge network,
//! published ports, pod files, sysctls, host network, rollback, restart, and no leftovers.
//! Every test has its own bridge, subnet and cgroup parent ([`PodNet`]), so they run in
//! parallel; each ends with [`PodTest::finish`], which removes every pod and fails on any
//! leftover (mounts, pins, veths, bridge, nft table, cgroups, held IPs, processes).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::cri::{NamespaceMode, PodSandboxState};
use berth_tests::pods::host::{self, PodServer};
use berth_tests::pods::rpc::{self, Filter, Runtime};
use berth_tests::pods::{PodSpec, PodTest, load_fixture};
use berth_tests::{finish, skip};
use serde_json::Value;
use tonic::Code;

/// Declares a test that needs root and the host tools, and runs `body`.
macro_rules! pod_test {
    ($name:ident, $body:ident) => {
        pod_test!($name, $body, &[]);
    };
    ($name:ident, $body:ident, $extra:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let mut bins = vec!["nsenter", "busybox", "nft", "ip"];
            bins.extend_from_slice($extra);
            if skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            finish($body().await);
        }
    };
}

fn verbose_str<'a>(info: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(info, |v, k| v.get(*k))?.as_str()
}

/// Checks that the pod's init shares the pinned net/ipc/uts namespaces; returns the info.
async fn check_shared_namespaces(t: &PodTest, c: &mut Runtime, id: &str) -> Result<Value> {
    let info = rpc::info(c, id).await?;
    let pid = info["namespaces"]["init_pid"]
        .as_i64()
        .with_context(|| format!("no init_pid in verbose info: {info}"))?;
    ensure!(info["pid"].as_i64() == Some(pid), "pid vs init_pid: {info}");
    for kind in ["net", "ipc", "uts"] {
        let pin = t.pin(id, kind);
        ensure!(
            verbose_str(&info, &["namespaces", kind]) == Some(pin.to_str().unwrap_or_default()),
            "namespaces.{kind} in verbose info is not {pin:?}: {}",
            info["namespaces"]
        );
        let pinned = host::ns_inode(&pin)?;
        let init = host::ns_inode(Path::new(&format!("/proc/{pid}/ns/{kind}")))?;
        ensure!(
            pinned == init,
            "{kind}: init {pid} is not in the pinned namespace"
        );
        let own = host::ns_inode(Path::new(&format!("/proc/self/ns/{kind}")))?;
        ensure!(pinned != own, "{kind}: the pod uses the host's namespace");
    }
    Ok(info)
}

pod_test!(
    crictl_runp_pods_inspectp_stopp_rmp,
    crictl_body,
    &["crictl"]
);
async fn crictl_body() -> Result<()> {
    let t = PodTest::start().await?;
    let endpoint = format!("unix://{}", t.d.socket.display());
    let crictl = |args: &[&str]| -> Result<String> {
        let mut cmd = Command::new("crictl");
        cmd.args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ])
        .args(["--timeout", "30s"])
        .args(args);
        host::output_ok(cmd, &format!("crictl {}", args.join(" ")))
    };
    // The fixture as crictl reads it, with this test's cgroup parent.
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(
        berth_tests::pods::fixture::fixture_path("pod.json"),
    )?)?;
    json["linux"]["cgroup_parent"] = t.net.cgroup_parent.clone().into();
    let file = t.d.dir().join("pod.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&json)?)?;

    let id = crictl(&["runp", file.to_str().unwrap_or_default()])?
        .trim()
        .to_string();
    ensure!(id.len() == 64, "crictl runp printed {id:?}");
    t.track(&id);
    let pods: Value = serde_json::from_str(&crictl(&["pods", "-o", "json"])?)?;
    let items = pods["items"].as_array().context("crictl pods: no items")?;
    ensure!(items.len() == 1, "crictl pods: {pods}");
    ensure!(items[0]["id"] == id.as_str() && items[0]["state"] == "SANDBOX_READY");
    ensure!(items[0]["metadata"]["name"] == "berth-fixture-pod");
    ensure!(crictl(&["pods", "--name", "berth-fixture-pod", "-q"])?.trim() == id);
    ensure!(
        crictl(&["pods", "--label", "app=nothing", "-q"])?
            .trim()
            .is_empty()
    );

    let insp: Value = serde_json::from_str(&crictl(&["inspectp", "-o", "json", &id])?)?;
    let ip: Ipv4Addr = insp["status"]["network"]["ip"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("inspectp without an IPv4: {insp}"))?;
    ensure!(t.net.holds(ip), "{ip} not in {}", t.net.subnet);
    ensure!(insp["status"]["state"] == "SANDBOX_READY", "{insp}");
    ensure!(
        insp.to_string().contains("fixture-host"),
        "inspectp info lacks the hostname: {insp}"
    );
    host::ping(None, ip)?;

    crictl(&["stopp", &id])?;
    let pods: Value = serde_json::from_str(&crictl(&["pods", "-o", "json"])?)?;
    ensure!(pods["items"][0]["state"] == "SANDBOX_NOTREADY", "{pods}");
    crictl(&["rmp", &id])?;
    ensure!(crictl(&["pods", "-q"])?.trim().is_empty());

    // `rmp -f` removes a running pod.
    let id2 = crictl(&["runp", file.to_str().unwrap_or_default()])?
        .trim()
        .to_string();
    t.track(&id2);
    crictl(&["rmp", "-f", &id2])?;
    ensure!(crictl(&["pods", "-q"])?.trim().is_empty());
    t.finish().await
}

pod_test!(
    two_pods_reach_each_other_the_gateway_and_the_node,
    reach_body
);
async fn reach_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let a = t.run(&mut c, &PodSpec::new("reach-a", &t.net)).await?;
    let b = t.run(&mut c, &PodSpec::new("reach-b", &t.net)).await?;
    let (ia, ib) = (rpc::ip(&mut c, &a).await?, rpc::ip(&mut c, &b).await?);
    ensure!(ia != ib, "both pods got {ia}");
    ensure!(
        t.net.holds(ia) && t.net.holds(ib),
        "{ia} {ib} vs {}",
        t.net.subnet
    );
    check_shared_namespaces(&t, &mut c, &a).await?;
    let (na, nb) = (t.pin(&a, "net"), t.pin(&b, "net"));
    host::ping(Some(&na), ib).context("pod a -> pod b")?;
    host::ping(Some(&nb), ia).context("pod b -> pod a")?;
    host::ping(Some(&na), t.net.gateway()).context("pod a -> gateway")?;
    host::ping(None, ia).context("node -> pod a")?;
    // The pod sees its address on eth0 and a default route via the gateway.
    let addr = host::output_ok(host::in_netns(&na, &["ip", "-o", "-4", "addr"]), "ip addr")?;
    ensure!(
        addr.contains(&format!("{ia}/24")),
        "pod a addresses:\n{addr}"
    );
    let route = host::output_ok(host::in_netns(&na, &["ip", "-4", "route"]), "ip route")?;
    ensure!(
        route.contains(&format!("default via {}", t.net.gateway())),
        "pod a routes:\n{route}"
    );
    // A TCP server in pod b answers pod a.
    let _srv = PodServer::start(&nb, 7000, "from-b")?;
    let got = host::output_ok(
        host::in_netns(&na, &["busybox", "nc", "-w", "3", &ib.to_string(), "7000"]),
        "nc from pod a to pod b",
    )?;
    ensure!(got.trim() == "from-b", "pod a read {got:?} from pod b");
    t.finish().await
}

pod_test!(
    host_port_reaches_server_from_loopback_and_node_ip,
    ports_body
);
async fn ports_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let hp = berth_tests::free_port()?;
    let cfg = load_fixture("pod-ports.json")?;
    let mut spec = PodSpec::from_config(cfg, &t.net);
    spec.config.port_mappings[0].host_port = hp.into();
    let id = t.run(&mut c, &spec).await?;
    let ip = rpc::ip(&mut c, &id).await?;
    let info = rpc::info(&mut c, &id).await?;
    let maps = info["portMappings"].as_array().cloned().unwrap_or_default();
    ensure!(
        maps.len() == 1,
        "one published port expected (the other has no host port): {}",
        info["portMappings"]
    );
    let _srv = PodServer::start(&t.pin(&id, "net"), 8080, "hello-from-pod")?;
    let node = host::node_ip()?;
    for addr in [
        SocketAddr::from((ip, 8080)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, hp)),
        SocketAddr::from((node, hp)),
    ] {
        let got = host::tcp_read_retry(addr).with_context(|| format!("via {addr}"))?;
        ensure!(got.trim() == "hello-from-pod", "{addr} answered {got:?}");
    }
    rpc::stop(&mut c, &id).await?;
    // Stopped: the port is no longer published.
    let r = host::tcp_read(
        SocketAddr::from((Ipv4Addr::LOCALHOST, hp)),
        Duration::from_secs(2),
    );
    ensure!(
        !matches!(r.as_deref().map(str::trim), Ok("hello-from-pod")),
        "host port still reaches the pod after StopPodSandbox"
    );
    t.finish().await
}

pod_test!(dns_hosts_hostname_files_and_shm, files_body);
async fn files_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let spec = PodSpec::new("files", &t.net).hostname("web-0").dns(
        &["10.96.0.10", "1.1.1.1"],
        &["default.svc.cluster.local", "svc.cluster.local"],
        &["ndots:5"],
    );
    let id = t.run(&mut c, &spec).await?;
    let ip = rpc::ip(&mut c, &id).await?;
    let dir = t.pod_dir(&id);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("read {f}"));
    let resolv = read("resolv.conf")?;
    ensure!(
        resolv
            == "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:5\n",
        "resolv.conf:\n{resolv}"
    );
    let hosts = read("hosts")?;
    ensure!(hosts.contains("127.0.0.1\tlocalhost"), "hosts:\n{hosts}");
    ensure!(
        hosts.lines().any(|l| l == format!("{ip}\tweb-0")),
        "hosts lacks \"{ip}\\tweb-0\":\n{hosts}"
    );
    ensure!(read("hostname")? == "web-0\n");
    let uts = t.pin(&id, "uts");
    let name = host::output_ok(
        {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--uts={}", uts.display()))
                .args(["--", "hostname"]);
            cmd
        },
        "hostname in the pod",
    )?;
    ensure!(name.trim() == "web-0", "UTS hostname {name:?}");
    let info = check_shared_namespaces(&t, &mut c, &id).await?;
    ensure!(info["hostname"] == "web-0" && verbose_str(&info, &["dir"]) == dir.to_str());
    ensure!(
        host::mount_fstype(&dir.join("shm")).as_deref() == Some("tmpfs"),
        "{:?} is not a tmpfs",
        dir.join("shm")
    );

    // No DNS config: the node's resolv.conf, as containerd does.
    let plain = t.run(&mut c, &PodSpec::new("files-plain", &t.net)).await?;
    let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let got = std::fs::read_to_string(t.pod_dir(&plain).join("resolv.conf"))?;
    ensure!(
        got == node_resolv,
        "resolv.conf without DNS config:\n{got}\nnode's:\n{node_resolv}"
    );
    t.finish().await
}

pod_test!(sysctls_applied_in_the_pod_and_bad_ones_refused, sysctl_body);
async fn sysctl_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let key = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let host_before = std::fs::read_to_string(key)?;
    let spec = PodSpec::from_config(load_fixture("pod-sysctl.json")?, &t.net);
    let id = t.run(&mut c, &spec).await?;
    let pin = t.pin(&id, "net");
    ensure!(host::read_in_netns(&pin, key)?.trim() == "80");
    let range = host::read_in_netns(&pin, "/proc/sys/net/ipv4/ping_group_range")?;
    ensure!(
        range.split_whitespace().collect::<Vec<_>>() == ["0", "2147483647"],
        "ping_group_range {range:?}"
    );
    ensure!(
        std::fs::read_to_string(key)? == host_before,
        "the host's value changed"
    );
    let info = rpc::info(&mut c, &id).await?;
    ensure!(info["sysctls"]["net.ipv4.ip_unprivileged_port_start"] == "80");

    let bad = PodSpec::new("sysctl-bad", &t.net).sysctl("vm.swappiness", "10");
    let st = rpc::run_err(&mut c, &bad.build()).await?;
    ensure!(
        st.code() == Code::InvalidArgument && st.message().contains("vm.swappiness"),
        "vm.swappiness -> {:?}: {}",
        st.code(),
        st.message()
    );
    let hostnet = PodSpec::new("sysctl-hostnet", &t.net)
        .host_network()
        .sysctl("net.ipv4.ip_unprivileged_port_start", "80");
    let st = rpc::run_err(&mut c, &hostnet.build()).await?;
    ensure!(
        st.code() == Code::InvalidArgument,
        "net.* with host network -> {:?}: {}",
        st.code(),
        st.message()
    );
    let listed = rpc::list(&mut c, None).await?;
    ensure!(listed.len() == 1, "refused pods are listed: {listed:?}");
    t.finish().await
}

pod_test!(host_network_pod_uses_the_host_netns, hostnet_body);
async fn hostnet_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    // PID shared (an init exists): its network namespace must be the host's.
    let id = t
        .run(&mut c, &PodSpec::new("hostnet", &t.net).host_network())
        .await?;
    let st = rpc::status(&mut c, &id, false)
        .await?
        .status
        .context("status")?;
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    ensure!(ip.is_empty(), "host-network pod has IP {ip:?}");
    let ns = st
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .context("no namespace options in status")?;
    ensure!(ns.network == NamespaceMode::Node as i32, "{ns:?}");
    let info = rpc::info(&mut c, &id).await?;
    ensure!(
        info["namespaces"]["net"].is_null(),
        "{}",
        info["namespaces"]
    );
    ensure!(!t.pin(&id, "net").exists(), "a net pin exists");
    let pid = info["namespaces"]["init_pid"]
        .as_i64()
        .context("no init for a PID-shared pod")?;
    ensure!(
        host::ns_inode(Path::new(&format!("/proc/{pid}/ns/net")))? == host::host_netns_inode()?,
        "the pod's init is not in the host network namespace"
    );
    let hosts = std::fs::read_to_string(t.pod_dir(&id).join("hosts"))?;
    ensure!(
        hosts == std::fs::read_to_string("/etc/hosts")?,
        "hosts:\n{hosts}"
    );
    let node_name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    let hn = std::fs::read_to_string(t.pod_dir(&id).join("hostname"))?;
    ensure!(hn.trim() == node_name.trim(), "hostname file {hn:?}");
    ensure!(
        !berth_tests::pods::leaks::link_exists(&t.net.bridge),
        "bridge created for a host-network pod"
    );

    // The crictl fixture: PID per container, IPC of the node: nothing pinned but UTS.
    let spec = PodSpec::from_config(load_fixture("pod-hostnet.json")?, &t.net);
    let id2 = t.run(&mut c, &spec).await?;
    let info = rpc::info(&mut c, &id2).await?;
    ensure!(
        info["namespaces"]["net"].is_null() && info["namespaces"]["ipc"].is_null(),
        "{}",
        info["namespaces"]
    );
    ensure!(rpc::state(&mut c, &id2).await? == PodSandboxState::SandboxReady);
    t.finish().await
}

/// The id of every pod berthd's log mentions (`pod=<64 hex>`).
fn pod_ids_in_log(log: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in log.split("pod=").skip(1) {
        let id: String = part
            .trim_start_matches('"')
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        if id.len() == 64 && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

pod_test!(failure_at_each_run_step_leaves_nothing, faults_body);
async fn faults_body() -> Result<()> {
    for step in [
        "cgroup",
        "namespaces",
        "sysctls",
        "files",
        "network",
        "record",
    ] {
        let env = vec![("BERTHD_FAULT_INJECT".to_string(), step.to_string())];
        let mut t = PodTest::start_with("", env).await?;
        let mut c = t.rt().await?;
        let spec = PodSpec::new(&format!("fault-{step}"), &t.net)
            .tcp_port(8080, berth_tests::free_port()?)
            .sysctl("net.ipv4.ip_unprivileged_port_start", "80")
            .dns(&["10.96.0.10"], &[], &[]);
        let st = rpc::run_err(&mut c, &spec.build()).await?;
        ensure!(
            st.message().contains(step),
            "injected failure at {step}: message does not name the step: {:?}: {}",
            st.code(),
            st.message()
        );
        for id in pod_ids_in_log(&t.d.log_tail(10_000)) {
            t.track(&id);
        }
        ensure!(
            !t.ids().is_empty(),
            "{step}: the failed pod's id is not in the log"
        );
        let listed = rpc::list(&mut c, None).await?;
        ensure!(listed.is_empty(), "{step}: failed pod listed: {listed:?}");
        let leaks = t.leaks();
        ensure!(leaks.is_empty(), "{step}: left behind: {leaks:?}");
        drop(c);

        // The same node without the fault: the next pod gets an address, and the IPAM
        // file holds only that one.
        t.d.terminate(Duration::from_secs(15)).await?;
        let t2 = PodTest::start_sharing(&t, Vec::new()).await?;
        let mut c2 = t2.rt().await?;
        let id = t2
            .run(&mut c2, &spec)
            .await
            .with_context(|| format!("after {step}"))?;
        let ip = rpc::ip(&mut c2, &id).await?;
        ensure!(t.net.holds(ip), "{step}: next pod got {ip}");
        let held = t2.ipam_held()?;
        ensure!(
            held == vec![(ip.to_string(), id.clone())],
            "{step}: IPAM holds {held:?}, want only {ip} for {id}"
        );
        drop(c2);
        t2.finish().await?;
        let leaks = t.leaks();
        ensure!(leaks.is_empty(), "{step}: left behind: {leaks:?}");
        eprintln!(
            "fault at {step}: {:?}: {} -> nothing left",
            st.code(),
            st.message()
        );
    }
    Ok(())
}

pod_test!(
    two_hundred_run_stop_remove_cycles_leave_nothing,
    cycles_body
);
async fn cycles_body() -> Result<()> {
    const CYCLES: usize = 200;
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let hp = berth_tests::free_port()?;
    let started = Instant::now();
    let mut ips = std::collections::BTreeSet::new();
    for i in 0..CYCLES {
        let spec = PodSpec::new(&format!("cycle-{i}"), &t.net).tcp_port(80, hp);
        let id = t
            .run(&mut c, &spec)
            .await
            .with_context(|| format!("cycle {i}"))?;
        let ip = rpc::ip(&mut c, &id).await?;
        ensure!(t.net.holds(ip), "cycle {i}: {ip}");
        ips.insert(ip);
        rpc::stop(&mut c, &id)
            .await
            .with_context(|| format!("stop, cycle {i}"))?;
        rpc::remove(&mut c, &id)
            .await
            .with_context(|| format!("remove, cycle {i}"))?;
        if i % 50 == 49 {
            let leaks = t.leaks();
            ensure!(leaks.is_empty(), "after {} cycles: {leaks:?}", i + 1);
        }
    }
    let took = started.elapsed();
    eprintln!(
        "{CYCLES} cycles in {:.1}s ({:.1} ms each), {} distinct IPs",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / CYCLES as f64,
        ips.len()
    );
    ensure!(rpc::list(&mut c, None).await?.is_empty());
    ensure!(t.ipam_held()?.is_empty(), "IPs held: {:?}", t.ipam_held()?);
    drop(c);
    t.finish().await
}

pod_test!(restart_and_kill9_keep_pods_and_ips, restart_body);
async fn restart_body() -> Result<()> {
    let mut t = PodTest::start().await?;
    let hp = berth_tests::free_port()?;
    let (a, b, ia, ib) = {
        let mut c = t.rt().await?;
        let a = t
            .run(&mut c, &PodSpec::new("keep-a", &t.net).tcp_port(8080, hp))
            .await?;
        let b = t.run(&mut c, &PodSpec::new("keep-b", &t.net)).await?;
        (
            a.clone(),
            b.clone(),
            rpc::ip(&mut c, &a).await?,
            rpc::ip(&mut c, &b).await?,
        )
    };
    let _srv = PodServer::start(&t.pin(&a, "net"), 8080, "still-here")?;
    let mut seen = vec![ia, ib];
    for how in ["SIGTERM", "kill -9"] {
        if how == "SIGTERM" {
            t.d.restart().await?;
        } else {
            t.d.kill9()?;
            t.d.start_again().await?;
        }
        let mut c = t.rt().await?;
        let listed = rpc::list(&mut c, None).await?;
        ensure!(listed.len() == seen.len(), "after {how}: {listed:?}");
        for (id, ip) in [(&a, ia), (&b, ib)] {
            ensure!(
                rpc::state(&mut c, id).await? == PodSandboxState::SandboxReady,
                "after {how}: {id} not ready"
            );
            ensure!(
                rpc::ip(&mut c, id).await? == ip,
                "after {how}: {id} changed IP"
            );
        }
        check_shared_namespaces(&t, &mut c, &a).await?;
        host::ping(Some(&t.pin(&a, "net")), ib).with_context(|| format!("a -> b after {how}"))?;
        let got = host::tcp_read_retry(SocketAddr::from((Ipv4Addr::LOCALHOST, hp)))?;
        ensure!(got.trim() == "still-here", "host port after {how}: {got:?}");
        let n = t
            .run(
                &mut c,
                &PodSpec::new(&format!("new-{}", seen.len()), &t.net),
            )
            .await?;
        let ip = rpc::ip(&mut c, &n).await?;
        ensure!(
            !seen.contains(&ip),
            "after {how}: new pod got {ip}, already in use"
        );
        seen.push(ip);
    }
    t.finish().await
}

pod_test!(list_status_stop_remove_semantics, semantics_body);
async fn semantics_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let spec_a = PodSpec::new("sem-a", &t.net).label("tier", "x");
    let a = t.run(&mut c, &spec_a).await?;
    let b = t.run(&mut c, &PodSpec::new("sem-b", &t.net)).await?;
    ensure!(rpc::list(&mut c, None).await?.len() == 2);
    let by_label = Filter {
        labels: vec![("tier".into(), "x".into())],
        ..Default::default()
    };
    let only = rpc::list(&mut c, Some(by_label)).await?;
    ensure!(only.len() == 1 && only[0].id == a, "label filter: {only:?}");
    let by_prefix = Filter {
        id: b[..12].to_string(),
        ..Default::default()
    };
    let only = rpc::list(&mut c, Some(by_prefix)).await?;
    ensure!(
        only.len() == 1 && only[0].id == b,
        "id prefix filter: {only:?}"
    );
    ensure!(
        rpc::status(&mut c, &a[..12], false).await.is_ok(),
        "status by id prefix"
    );

    let st = rpc::status(&mut c, &a, false)
        .await?
        .status
        .context("status")?;
    let meta = st.metadata.clone().context("metadata")?;
    ensure!(meta.name == "sem-a" && meta.namespace == "berth-test" && meta.uid == "sem-a-uid");
    ensure!(st.created_at > 0 && st.labels.get("tier").map(String::as_str) == Some("x"));
    let info = check_shared_namespaces(&t, &mut c, &a).await?;
    for key in [
        "id",
        "state",
        "hostname",
        "dir",
        "namespaces",
        "pid",
        "cgroup",
        "portMappings",
        "sysctls",
        "config",
    ] {
        ensure!(info.get(key).is_some(), "verbose info lacks {key}: {info}");
    }
    ensure!(
        info["namespaces"]["init_start_time"].is_u64(),
        "{}",
        info["namespaces"]
    );
    let cg = info["cgroup"].as_str().context("cgroup")?;
    ensure!(
        cg.starts_with(t.net.cgroup_parent.trim_start_matches('/')),
        "cgroup {cg} not under {}",
        t.net.cgroup_parent
    );
    ensure!(
        !berth_tests::pods::leaks::cgroup_dirs(cg).is_empty(),
        "pod cgroup {cg} does not exist"
    );

    // The same request again (its answer was delivered) and another config under the name
    // are both refused.
    let s = rpc::run_err(&mut c, &spec_a.build()).await?;
    ensure!(s.code() == Code::AlreadyExists, "repeat -> {s:?}");
    let other = spec_a.clone().hostname("other-host");
    let s = rpc::run_err(&mut c, &other.build()).await?;
    ensure!(
        s.code() == Code::AlreadyExists,
        "same name, other config -> {s:?}"
    );
    ensure!(rpc::list(&mut c, None).await?.len() == 2);

    // Stop: NotReady, network gone, IP released; twice is fine.
    rpc::stop(&mut c, &a).await?;
    rpc::stop(&mut c, &a).await.context("second stop")?;
    ensure!(rpc::state(&mut c, &a).await? == PodSandboxState::SandboxNotready);
    ensure!(!berth_tests::pods::leaks::link_exists(
        &berth_tests::pods::leaks::veth_name(&a)
    ));
    ensure!(
        t.ipam_held()?.iter().all(|(_, owner)| owner != &a),
        "stopped pod still holds an IP: {:?}",
        t.ipam_held()?
    );
    let ready = Filter {
        state: Some(PodSandboxState::SandboxReady),
        ..Default::default()
    };
    let only = rpc::list(&mut c, Some(ready)).await?;
    ensure!(only.len() == 1 && only[0].id == b, "state filter: {only:?}");

    // Remove: gone; NotFound after; removing or stopping again is fine.
    rpc::remove(&mut c, &a).await?;
    let s = rpc::status(&mut c, &a, false).await;
    ensure!(
        matches!(&s, Err(s) if s.code() == Code::NotFound),
        "status after remove: {s:?}"
    );
    rpc::remove(&mut c, &a).await.context("second remove")?;
    rpc::stop(&mut c, &a).await.context("stop after remove")?;
    ensure!(!t.pod_dir(&a).exists(), "pod dir of a removed pod remains");
    // Remove without stop (kubelet after a node drain): stops it first.
    rpc::remove(&mut c, &b).await?;
    ensure!(rpc::list(&mut c, None).await?.is_empty());
    // The name is free again.
    let a2 = t.run(&mut c, &spec_a).await?;
    ensure!(a2 != a, "a new pod reuses the old id");
    drop(c);
    t.finish().await
}

pod_test!(
    update_runtime_config_moves_new_pods_to_the_pod_cidr,
    cidr_body
);
async fn cidr_body() -> Result<()> {
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let old = t.run(&mut c, &PodSpec::new("cidr-old", &t.net)).await?;
    let old_ip = rpc::ip(&mut c, &old).await?;
    let cidr = t.net.other_subnet();
    rpc::set_pod_cidr(&mut c, &cidr).await?;
    let new = t.run(&mut c, &PodSpec::new("cidr-new", &t.net)).await?;
    let new_ip = rpc::ip(&mut c, &new).await?;
    let prefix = cidr.trim_end_matches("0/24");
    ensure!(
        new_ip.to_string().starts_with(prefix),
        "new pod got {new_ip}, pod CIDR {cidr}"
    );
    ensure!(rpc::ip(&mut c, &old).await? == old_ip, "old pod changed IP");
    host::ping(Some(&t.pin(&new, "net")), old_ip).context("new -> old")?;
    host::ping(Some(&t.pin(&old, "net")), new_ip).context("old -> new")?;
    drop(c);
    t.finish().await
}

#[test]
fn pod_ids_are_found_in_logs() {
    let id = "ab".repeat(32);
    let log = format!("WARN RunPodSandbox failed; undoing pod={id} error=x\n pod=\"{id}\" pod=zz");
    assert_eq!(pod_ids_in_log(&log), vec![id]);
}

pod_test!(pod_init_runs_in_the_pod_cgroup, init_cgroup_body);
async fn init_cgroup_body() -> Result<()> {
    // containerd and CRI-O start the sandbox's pause process below the pod cgroup, so what
    // the pod's shared processes use is accounted (and limited) with the pod. berth puts
    // it in the leaf `<pod cgroup>/pod-init` (cgroup v2 forbids processes in a cgroup
    // whose children, the containers, get controllers).
    let t = PodTest::start().await?;
    let mut c = t.rt().await?;
    let id = t.run(&mut c, &PodSpec::new("cg", &t.net)).await?;
    let info = rpc::info(&mut c, &id).await?;
    let pid = info["pid"].as_i64().context("no pid in verbose info")?;
    let cg = info["cgroup"]
        .as_str()
        .context("no cgroup in verbose info")?;
    let leaf = format!("{cg}/pod-init");
    let dirs = berth_tests::pods::leaks::cgroup_dirs(&leaf);
    ensure!(!dirs.is_empty(), "pod init cgroup {leaf} does not exist");
    for dir in &dirs {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        ensure!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "pod init {pid} is not in {} (its cgroups: {})",
            dir.display(),
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .unwrap_or_default()
                .replace('\n', " ")
        );
    }
    drop(c);
    t.finish().await
}

pod_test!(
    bridge_and_table_stay_until_berthd_stops_or_reset,
    bridge_stays_body
);
async fn bridge_stays_body() -> Result<()> {
    use berth_tests::pods::leaks::{link_exists, nft_table_exists};
    let mut t = PodTest::start().await?;
    let (bridge, table) = (t.net.bridge.clone(), t.net.nft_table());
    let host_net = || (link_exists(&bridge), nft_table_exists(&table));

    // The last pod going leaves the bridge and the table in place for the next one.
    let mut c = t.rt().await?;
    let a = t.run(&mut c, &PodSpec::new("stay-a", &t.net)).await?;
    rpc::remove(&mut c, &a).await?;
    ensure!(
        host_net() == (true, true),
        "after the last pod: {:?}",
        host_net()
    );
    let b = t.run(&mut c, &PodSpec::new("stay-b", &t.net)).await?;
    drop(c);

    // `berthd reset` is refused while berthd runs, and removes everything once it is gone
    // (here: killed with pod b still attached).
    let refused = t.d.reset();
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("berthd stopped")),
        "reset while berthd runs: {refused:?}"
    );
    t.d.kill9()?;
    ensure!(
        host_net() == (true, true),
        "after kill -9: {:?}",
        host_net()
    );
    let out = t.d.reset()?;
    ensure!(
        host_net() == (false, false),
        "after reset: {:?}\n{out}",
        host_net()
    );
    ensure!(
        out.contains(&format!("bridge {bridge}")),
        "reset said:\n{out}"
    );
    ensure!(
        t.ipam_held()?.is_empty(),
        "reset left addresses held: {:?}",
        t.ipam_held()?
    );
    ensure!(
        !t.pin(&b, "net").exists(),
        "reset left the pod's namespace pins"
    );

    // network.remove_on_exit (the harness's base config): a clean stop with no pod left
    // removes them.
    t.d.start_again().await?;
    let mut c = t.rt().await?;
    rpc::remove_all(&mut c).await?;
    let d = t.run(&mut c, &PodSpec::new("stay-d", &t.net)).await?;
    rpc::remove(&mut c, &d).await?;
    drop(c);
    ensure!(
        host_net() == (true, true),
        "before the stop: {:?}",
        host_net()
    );
    t.d.terminate(Duration::from_secs(15)).await?;
    ensure!(
        host_net() == (false, false),
        "after the stop: {:?}",
        host_net()
    );
    // Nothing is created before the first pod.
    t.d.start_again().await?;
    ensure!(
        host_net() == (false, false),
        "at start-up: {:?}",
        host_net()
    );
    t.finish().await
}

/// berthd's threads, by name (from /proc/<pid>/task/*/comm).
fn berthd_threads(pid: u32) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        names.push(comm.trim().to_string());
    }
    names.sort();
    Ok(names)
}

pod_test!(berthd_threads_do_not_grow_with_pods, flat_threads_body);
async fn flat_threads_body() -> Result<()> {
    let t = PodTest::start().await?;
    let pid = t.d.pid().context("berthd pid")?;
    let mut c = t.rt().await?;
    // One pod first, so the runtime's worker and blocking threads exist.
    let first = t.run(&mut c, &PodSpec::new("flat-0", &t.net)).await?;
    let before = berthd_threads(pid)?;
    for i in 1..=10 {
        t.run(&mut c, &PodSpec::new(&format!("flat-{i}"), &t.net))
            .await?;
    }
    let after = berthd_threads(pid)?;
    ensure!(
        !after.iter().any(|n| n.contains("reaper")),
        "per-pod reaper threads: {after:?}"
    );
    // A little slack for tokio's blocking pool (idle threads linger for 10 s).
    ensure!(
        after.len() <= before.len() + 2,
        "threads grew with 10 pods: {} -> {}\nbefore: {before:?}\nafter: {after:?}",
        before.len(),
        after.len()
    );
    eprintln!(
        "berthd threads: {} with 1 pod, {} with 11 pods",
        before.len(),
        after.len()
    );
    // Pod inits' parents are reaped as the pods go: no zombie child of berthd is left.
    rpc::remove(&mut c, &first).await?;
    rpc::remove_all(&mut c).await?;
    drop(c);
    let zombies = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| s.contains(") Z "))
        })
        .count();
    ensure!(zombies == 0, "{zombies} zombie children of berthd");
    t.finish().await
}
