//! Pod cgroups on a cgroup v2 (unified) node. Skips unless /sys/fs/cgroup is cgroup2 with
//! a memory controller: run it through the VM lane (see shared/tools/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use berth_core::pod::ports::{Cgroups, PodError};
use berth_linux::cgroup::{CgroupMode, DEFAULT_ROOT, LinuxCgroups, mode};

fn usable() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    let controllers = std::fs::read_to_string(Path::new(DEFAULT_ROOT).join("cgroup.controllers"))
        .unwrap_or_default();
    if mode() != CgroupMode::V2 || !controllers.split_whitespace().any(|c| c == "memory") {
        eprintln!(
            "skipped: /sys/fs/cgroup is not cgroup2 with a memory controller (use the VM lane)"
        );
        return false;
    }
    true
}

#[tokio::test]
async fn create_and_remove_v2() {
    if !usable() {
        return;
    }
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    assert_eq!(cg.mode(), CgroupMode::V2);
    let path = format!("berth/berth-test-{}", std::process::id());
    cg.create_pod(&path).await.unwrap();
    cg.create_pod(&path).await.unwrap();
    let dirs = cg.dirs(&path).unwrap();
    assert_eq!(dirs.len(), 1);
    let dir = &dirs[0];
    // The controllers reach the pod: its parent enabled them for it.
    let parent = dir.parent().unwrap();
    let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap();
    for c in ["memory", "pids", "cpu"] {
        assert!(
            enabled.split_whitespace().any(|x| x == c),
            "{c} not enabled: {enabled}"
        );
    }
    assert!(dir.join("memory.max").exists());
    assert!(dir.join("pids.max").exists());

    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    match cg.remove_pod(&path).await {
        Err(PodError::Failed { message, .. }) => {
            assert!(message.contains("processes"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    // The kernel empties a cgroup shortly after its last process exits.
    let mut ok = false;
    for _ in 0..50 {
        if cg.remove_pod(&path).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "pod cgroup could not be removed");
    assert!(!dir.exists());
    assert!(!parent.exists(), "the default parent was left behind");

    let scope = format!("berth.slice/berth-test-{}.scope", std::process::id());
    cg.create_pod(&scope).await.unwrap();
    let d = cg.dirs(&scope).unwrap().remove(0);
    assert!(d.join("memory.max").exists());
    cg.remove_pod(&scope).await.unwrap();
    assert!(!d.exists() && !d.parent().unwrap().exists());
}

/// `docker pause` on v2: cgroup.freeze, waiting for `frozen 1` in cgroup.events.
#[tokio::test]
async fn freeze_and_thaw_v2() {
    use berth_linux::cgroup::freezer::Freezer;
    if !usable() {
        return;
    }
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    // Not under the default parent: the test above checks that it goes away.
    let path = format!("berth-test-freeze-{}", std::process::id());
    cg.create_pod(&path).await.unwrap();
    let dir = cg.dirs(&path).unwrap().remove(0);
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();

    let f = Freezer::locate(&cg, &path).unwrap();
    assert_eq!(f, Freezer::V2(dir.clone()));
    f.freeze().unwrap();
    assert!(f.is_frozen().unwrap());
    let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 1"), "{events}");
    f.thaw().unwrap();
    assert!(!f.is_frozen().unwrap());

    // SIGKILL ends a frozen task on v2.
    f.freeze().unwrap();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    f.thaw().unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if cg.remove_pod(&path).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "freezer test cgroup could not be removed");
}
