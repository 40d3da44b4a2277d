//! Pod namespaces for real: pins, hostname, loopback, the pod init, sysctls, removal.
//! Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_core::pod::ports::{NamespaceRequest, Namespaces, PodError};
use berth_core::pod::record::{NamespaceMode, NamespaceModes, PodNamespaces};
use berth_core::pod::sysctl::validate;
use berth_linux::ns::LinuxNamespaces;
use berth_linux::ns::mountinfo;

fn root() -> bool {
    let ok = nix::unistd::geteuid().is_root();
    if !ok {
        eprintln!("skipped: needs root");
    }
    ok
}

fn port() -> LinuxNamespaces {
    LinuxNamespaces::with_init_exe(env!("CARGO_BIN_EXE_berth-pod-init"))
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-test-ns-")
        .tempdir()
        .unwrap()
}

fn request(
    dir: &Path,
    id: &str,
    network: NamespaceMode,
    ipc: NamespaceMode,
    pid: NamespaceMode,
) -> NamespaceRequest {
    NamespaceRequest {
        pod_id: id.into(),
        pin_dir: dir.join("pods").join(id).join("ns"),
        modes: NamespaceModes { network, pid, ipc },
        hostname: format!("host-{id}"),
        userns: None,
        join_net: None,
    }
}

/// Cleans up a pod even when an assertion fails half-way (remove is idempotent).
struct Guard<'a>(&'a LinuxNamespaces, PodNamespaces, PathBuf);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_blocking(&self.1, &self.2) {
            eprintln!("cleanup: {e}");
        }
    }
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn ino(p: impl AsRef<Path>) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    mountinfo::mounts_under(&std::fs::canonicalize(dir).unwrap())
        .unwrap()
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}

fn check_pin(pin: &Path, kind: &str) {
    let canon = std::fs::canonicalize(pin).unwrap();
    let m = mountinfo::mounts()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == canon)
        .unwrap_or_else(|| panic!("{} is not a mount", pin.display()));
    assert_eq!(m.fs_type, "nsfs", "{}", pin.display());
    assert_ne!(
        ino(pin),
        ino(format!("/proc/self/ns/{kind}")),
        "{kind} is the host's"
    );
}

/// Everything about one mode combination, then removal and the absence of leftovers.
async fn one_combination(network: NamespaceMode, ipc: NamespaceMode, pid: NamespaceMode) {
    let dir = tmp();
    let ns = port();
    let req = request(dir.path(), "combo", network, ipc, pid);
    let got = ns.create(&req).await.unwrap();
    let _guard = Guard(&ns, got.clone(), req.pin_dir.clone());
    let what = format!("{network:?}/{ipc:?}/{pid:?}");

    assert_eq!(got.net.is_some(), network == NamespaceMode::Pod, "{what}");
    assert_eq!(got.ipc.is_some(), ipc == NamespaceMode::Pod, "{what}");
    assert_eq!(got.uts.is_some(), network != NamespaceMode::Node, "{what}");
    assert_eq!(got.init_pid.is_some(), pid == NamespaceMode::Pod, "{what}");
    assert_eq!(
        got.init_start_time.is_some(),
        pid == NamespaceMode::Pod,
        "{what}"
    );
    if let Some(p) = &got.net {
        check_pin(p, "net");
        let link = sh(Command::new("nsenter")
            .arg(format!("--net={}", p.display()))
            .args(["ip", "-o", "link", "show", "lo"]));
        assert!(
            link.contains(",UP") || link.contains("<UP"),
            "lo is down: {link}"
        );
    }
    if let Some(p) = &got.ipc {
        check_pin(p, "ipc");
    }
    if let Some(p) = &got.uts {
        check_pin(p, "uts");
        let h = sh(Command::new("nsenter")
            .arg(format!("--uts={}", p.display()))
            .arg("hostname"));
        assert_eq!(h.trim(), "host-combo");
    }
    if let Some(pid) = got.init_pid {
        assert!(ns.init_alive(&got));
        // No process waits for the init but its spawner (berthd; here the test).
        assert_eq!(
            parent_of(pid),
            std::process::id() as i32,
            "{what}: init's parent"
        );
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
        assert!(
            nspid.ends_with("\t1"),
            "init is not PID 1 of its namespace: {nspid}"
        );
        // The init lives in the pod's namespaces (or the host's where the pod has none).
        for (kind, pin) in [("net", &got.net), ("ipc", &got.ipc), ("uts", &got.uts)] {
            let want = match pin {
                Some(p) => ino(p),
                None => ino(format!("/proc/self/ns/{kind}")),
            };
            assert_eq!(
                ino(format!("/proc/{pid}/ns/{kind}")),
                want,
                "{what}: init's {kind}"
            );
        }
    }

    ns.remove(&got, &req.pin_dir).await.unwrap();
    assert!(
        mounts_below(dir.path()).is_empty(),
        "{what}: mounts left: {:?}",
        mounts_below(dir.path())
    );
    assert!(!req.pin_dir.exists(), "{what}: pin dir left");
    if let Some(pid) = got.init_pid {
        assert!(!ns.init_alive(&got));
        // The init is not left, not even as a zombie.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{what}: init {pid} left"
        );
    }
    // Idempotent.
    ns.remove(&got, &req.pin_dir).await.unwrap();
}

#[tokio::test]
async fn every_mode_combination() {
    if !root() {
        return;
    }
    use NamespaceMode::*;
    for network in [Pod, Node] {
        for ipc in [Pod, Container, Node] {
            for pid in [Pod, Container, Node] {
                one_combination(network, ipc, pid).await;
            }
        }
    }
}

/// Host PIDs whose parent is `ppid`.
fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f[1].parse::<i32>().unwrap() == ppid {
            out.push((pid, f[0].chars().next().unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn init_reaps_orphans_and_remove_kills_the_namespace() {
    if !root() {
        return;
    }
    use NamespaceMode::*;
    let dir = tmp();
    let ns = port();
    let req = request(dir.path(), "reap", Pod, Pod, Pod);
    let got = ns.create(&req).await.unwrap();
    let _guard = Guard(&ns, got.clone(), req.pin_dir.clone());
    let init = got.init_pid.unwrap();
    // An orphan in the pod's PID namespace is re-parented to the init, which must reap it.
    sh(Command::new("nsenter").args([
        "--target",
        &init.to_string(),
        "--pid",
        "--",
        "sh",
        "-c",
        "sleep 2 >/dev/null 2>&1 & exit 0",
    ]));
    let kids = children_of(init);
    assert_eq!(
        kids.len(),
        1,
        "the orphan should be the init's child: {kids:?}"
    );
    // Once it exits, the init reaps it (no zombie stays behind).
    let mut left = kids;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = children_of(init);
        if left.is_empty() {
            break;
        }
    }
    assert!(left.is_empty(), "zombie not reaped: {left:?}");

    // A long-lived process in the namespace dies with the init.
    sh(Command::new("nsenter").args([
        "--target",
        &init.to_string(),
        "--pid",
        "--",
        "sh",
        "-c",
        "sleep 1000 >/dev/null 2>&1 & exit 0",
    ]));
    let sleeper = children_of(init)[0].0;
    ns.remove(&got, &req.pin_dir).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !Path::new(&format!("/proc/{sleeper}")).exists(),
        "process in the pod survived"
    );
    assert!(!ns.init_alive(&got));
    assert!(mounts_below(dir.path()).is_empty());
}

#[tokio::test]
async fn a_recycled_pid_is_not_killed() {
    if !root() {
        return;
    }
    let dir = tmp();
    let ns = port();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let fake = PodNamespaces {
        init_pid: Some(child.id() as i32),
        init_start_time: Some(1),
        ..Default::default()
    };
    assert!(!ns.init_alive(&fake));
    ns.remove(&fake, &dir.path().join("pods/x/ns"))
        .await
        .unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "an unrelated process was killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

fn read_sysctl_in(net: Option<&Path>, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut cmd = Command::new("nsenter");
    if let Some(net) = net {
        cmd.arg(format!("--net={}", net.display()));
    }
    sh(cmd.args(["cat", &path])).trim().to_string()
}

#[tokio::test]
async fn sysctls_land_in_the_pod_namespaces_only() {
    if !root() {
        return;
    }
    use NamespaceMode::*;
    let dir = tmp();
    let ns = port();
    let req = request(dir.path(), "sysctl", Pod, Pod, Container);
    let got = ns.create(&req).await.unwrap();
    let _guard = Guard(&ns, got.clone(), req.pin_dir.clone());
    let net = got.net.clone().unwrap();

    let key = "net.ipv4.ip_unprivileged_port_start";
    let host_before = read_sysctl_in(None, key);
    let host_fwd = read_sysctl_in(None, "net.ipv4.conf.lo.forwarding");
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let want = if host_before == "80" { "81" } else { "80" };
    let mut s = BTreeMap::new();
    s.insert(key.to_string(), want.to_string());
    s.insert(
        "net/ipv4/conf/lo/forwarding".to_string(),
        if host_fwd == "1" { "0" } else { "1" }.to_string(),
    );
    s.insert("kernel.shmmni".to_string(), "1234".to_string());
    s.insert("kernel.domainname".to_string(), "berth.test".to_string());
    let sysctls = validate(&s, &req.modes).unwrap();
    ns.apply_sysctls(&got, &sysctls).await.unwrap();

    assert_eq!(read_sysctl_in(Some(&net), key), want);
    assert_ne!(
        read_sysctl_in(Some(&net), "net.ipv4.conf.lo.forwarding"),
        host_fwd
    );
    assert_eq!(
        read_sysctl_in(None, key),
        host_before,
        "the host's value changed"
    );
    assert_eq!(
        read_sysctl_in(None, "net.ipv4.conf.lo.forwarding"),
        host_fwd
    );
    let ipc = got.ipc.clone().unwrap();
    let shmmni = sh(Command::new("nsenter")
        .arg(format!("--ipc={}", ipc.display()))
        .args(["cat", "/proc/sys/kernel/shmmni"]));
    assert_eq!(shmmni.trim(), "1234");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host_shmmni
    );
    let uts = got.uts.clone().unwrap();
    let dom = sh(Command::new("nsenter")
        .arg(format!("--uts={}", uts.display()))
        .args(["cat", "/proc/sys/kernel/domainname"]));
    assert_eq!(dom.trim(), "berth.test");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );

    // Unknown keys and bad values are the caller's fault.
    for (k, v, needle) in [
        (
            "net.ipv4.berth_no_such_knob",
            "1",
            "not known to this kernel",
        ),
        (key, "not-a-number", key),
    ] {
        let mut s = BTreeMap::new();
        s.insert(k.to_string(), v.to_string());
        let sysctls = validate(&s, &req.modes).unwrap();
        match ns.apply_sysctls(&got, &sysctls).await {
            Err(PodError::InvalidArgument(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{k}={v}: {other:?}"),
        }
    }
    assert_eq!(read_sysctl_in(None, key), host_before);

    ns.remove(&got, &req.pin_dir).await.unwrap();
    assert!(mounts_below(dir.path()).is_empty());
}

#[tokio::test]
async fn a_failed_create_leaves_nothing() {
    if !root() {
        return;
    }
    use NamespaceMode::*;
    let dir = tmp();
    // An init binary that does not exist: pins are made, then the init fails.
    let ns = LinuxNamespaces::with_init_exe(dir.path().join("berth-no-such-exe"));
    let req = request(dir.path(), "fail", Pod, Pod, Pod);
    let err = ns.create(&req).await.unwrap_err();
    assert!(err.to_string().contains("berth-no-such-exe"), "{err}");
    assert!(
        mounts_below(dir.path()).is_empty(),
        "{:?}",
        mounts_below(dir.path())
    );
    assert!(!req.pin_dir.exists());

    // A hostname the kernel refuses fails before anything is pinned.
    let ns = port();
    let mut req = request(dir.path(), "fail2", Pod, Pod, Pod);
    req.hostname = "x".repeat(100);
    assert!(ns.create(&req).await.is_err());
    assert!(mounts_below(dir.path()).is_empty());
    assert!(!req.pin_dir.exists());
}
