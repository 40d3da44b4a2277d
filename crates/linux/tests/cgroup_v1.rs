//! Pod cgroups on this host's cgroup v1 (hybrid) hierarchies. Needs root and v1; skips
//! otherwise. Only touches cgroups it creates (all named berth*).
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
    if mode() != CgroupMode::V1 {
        eprintln!("skipped: the node is not on cgroup v1");
        return false;
    }
    true
}

#[tokio::test]
async fn create_and_remove_in_every_hierarchy() {
    if !usable() {
        return;
    }
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    assert_eq!(cg.mode(), CgroupMode::V1);
    let path = format!("berth/berth-test-{}", std::process::id());
    cg.create_pod(&path).await.unwrap();
    // Idempotent create.
    cg.create_pod(&path).await.unwrap();
    let dirs = cg.dirs(&path).unwrap();
    for h in ["memory", "pids", "cpu", "cpuset", "freezer"] {
        let d = Path::new(DEFAULT_ROOT).join(h).join(&path);
        if Path::new(DEFAULT_ROOT).join(h).exists() {
            assert!(dirs.contains(&d), "{} missing from {dirs:?}", d.display());
        }
    }
    for d in &dirs {
        assert!(d.is_dir(), "{} not created", d.display());
    }
    let cpuset = Path::new(DEFAULT_ROOT).join("cpuset").join(&path);
    if cpuset.exists() {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = std::fs::read_to_string(cpuset.join(f)).unwrap();
            assert!(!v.trim().is_empty(), "{f} left empty");
        }
    }

    // A process inside: removal refuses and names the cgroup.
    let pids = Path::new(DEFAULT_ROOT).join("pids").join(&path);
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(pids.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    match cg.remove_pod(&path).await {
        Err(PodError::Failed { message, .. }) => {
            assert!(
                message.contains(&path) && message.contains("processes"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    cg.remove_pod(&path).await.unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{} left", d.display());
        // The default parent goes with its last pod (unless another test still uses it).
        let parent = d.parent().unwrap();
        let busy = parent.exists()
            && std::fs::read_dir(parent)
                .unwrap()
                .flatten()
                .any(|e| e.path().is_dir());
        assert!(!parent.exists() || busy, "{} left", parent.display());
    }
    cg.remove_pod(&path).await.unwrap();
}

#[tokio::test]
async fn systemd_style_and_custom_parents() {
    if !usable() {
        return;
    }
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    let id = std::process::id();
    let scope = format!("berth.slice/berth-test-{id}.scope");
    cg.create_pod(&scope).await.unwrap();
    let dirs = cg.dirs(&scope).unwrap();
    assert!(dirs.iter().all(|d| d.is_dir()));
    // Nested container cgroups (empty) go with the pod.
    std::fs::create_dir(dirs[0].join("berth-ctr")).unwrap();
    cg.remove_pod(&scope).await.unwrap();
    assert!(dirs.iter().all(|d| !d.exists()));

    // A parent the kubelet chose is not ours to delete.
    let custom = format!("berth-test-parent-{id}/pod");
    cg.create_pod(&custom).await.unwrap();
    cg.remove_pod(&custom).await.unwrap();
    for d in cg.dirs(&custom).unwrap() {
        assert!(!d.exists());
        let parent = d.parent().unwrap();
        assert!(parent.is_dir(), "a non-default parent was removed");
        std::fs::remove_dir(parent).unwrap();
    }

    for bad in ["", "/", "../x", "a/../../b"] {
        assert!(
            matches!(cg.create_pod(bad).await, Err(PodError::InvalidArgument(_))),
            "{bad:?}"
        );
        assert!(
            matches!(cg.remove_pod(bad).await, Err(PodError::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}
