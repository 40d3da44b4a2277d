//! berth's OCI runtime, namespaces: joining a network namespace by path, and `init --exec`
//! into a running container. Root only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runtime_support.rs"]
mod runtime_support;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use oci_spec::runtime::{LinuxNamespaceType, Process};
use runtime_support::{Bundle, skip, spawn};

const NETNS: &str = "berth-rt-test";

/// `ip netns add` for the test's life.
struct NetNs;

impl NetNs {
    fn add() -> Option<NetNs> {
        let _ = Command::new("ip")
            .args(["netns", "del", NETNS])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", NETNS])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(NetNs)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    }
}

#[test]
fn joins_a_network_namespace_by_path() {
    if skip() {
        return;
    }
    let Some(_ns) = NetNs::add() else {
        eprintln!("skipped: ip netns add failed");
        return;
    };
    let path = format!("/var/run/netns/{NETNS}");
    let ino = std::fs::metadata(&path).unwrap().ino();
    let mut b = Bundle::new(&["readlink", "/proc/self/ns/net"]);
    b.linux(|l| {
        let mut nss = l.namespaces().clone().unwrap();
        for ns in nss.iter_mut() {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some(path.clone().into()));
            }
        }
        l.set_namespaces(Some(nss));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim(), format!("net:[{ino}]"));
}

#[test]
fn exec_joins_a_running_container() {
    if skip() {
        return;
    }
    let mut b = Bundle::new(&["sleep", "30"]);
    b.spec.set_hostname(Some("berth-rt-exec".into()));
    let mut c = b.create().unwrap();
    c.start().unwrap();

    let mut p = Process::default();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "cat /proc/1/cmdline; echo; hostname; id -u; echo $$; cat /proc/self/cgroup | head -n 1; \
         grep NoNewPrivs /proc/self/status"
            .into(),
    ]));
    p.set_env(Some(vec!["PATH=/bin".into()]));
    p.set_cwd("/tmp".into());
    let mut u = p.user().clone();
    u.set_uid(123);
    p.set_user(u);
    let file = b.path().join("process.json");
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let pid = c.pid.to_string();
    let args = [
        "init",
        "--exec",
        "--pid",
        &pid,
        "--process",
        file.to_str().unwrap(),
        "--cgroup",
        &b.cgroups_path,
        "--bundle",
        b.path().to_str().unwrap(),
    ];
    let mut e = spawn(&args, false).unwrap();
    e.exec_result().unwrap();
    let (code, out, err) = e.wait();
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "sleep\u{0}30\u{0}");
    assert_eq!(lines[1], "berth-rt-exec");
    assert_eq!(lines[2], "123");
    assert_ne!(lines[3], "1");
    assert!(
        lines[4].ends_with(":/"),
        "in the container's cgroup (namespace root): {out}"
    );
    assert_eq!(lines[5], "NoNewPrivs:\t1");

    // An exec of a missing program reports the exec error.
    p.set_args(Some(vec!["nope".into()]));
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let mut e = spawn(&args, false).unwrap();
    assert_eq!(
        e.exec_result().unwrap_err(),
        "exec \"nope\": No such file or directory"
    );
    assert_eq!(e.wait().0, 127);
    c.kill();
}
