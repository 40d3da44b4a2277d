//! OverlayRootfs for real: layer order, read-only single layer, long layer lists (relative
//! paths, then lowerdir+), removal. Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use berth_core::runtime::Rootfs;
use berth_linux::rootfs::OverlayRootfs;

fn root() -> bool {
    let ok = nix::unistd::geteuid().is_root();
    if !ok {
        eprintln!("skipped: needs root");
    }
    ok
}

/// `n` layers under `base/snapshots/<64 hex>/fs`, each with its own file and `who`.
fn layers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let fs = base.join("snapshots").join(format!("{i:064x}")).join("fs");
            std::fs::create_dir_all(&fs).unwrap();
            std::fs::write(fs.join(format!("f{i}")), "x").unwrap();
            std::fs::write(fs.join("who"), format!("{i}")).unwrap();
            fs
        })
        .collect()
}

fn mounted(path: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    m.lines().any(|l| l.contains(&*path.to_string_lossy()))
}

#[tokio::test]
async fn overlay_layers_and_removal() {
    if !root() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-test-rootfs-")
        .tempdir()
        .unwrap();
    let fs = OverlayRootfs::new();
    for (n, readonly) in [
        (1, true),
        (1, false),
        (3, false),
        (3, true),
        (70, false),
        (150, false),
    ] {
        let base = tmp.path().join(format!("l{n}-{readonly}"));
        let lowers = layers(&base, n);
        let dir = tmp.path().join(format!("c{n}-{readonly}"));
        let root = fs.mount(&dir, &lowers, readonly).await.expect("mount");
        assert_eq!(root, dir.join("rootfs"));
        // The last (top) layer wins; every layer is visible.
        assert_eq!(
            std::fs::read_to_string(root.join("who")).unwrap(),
            format!("{}", n - 1)
        );
        assert!(root.join("f0").exists() && root.join(format!("f{}", n - 1)).exists());
        let write = std::fs::write(root.join("new"), "y");
        assert_eq!(
            write.is_ok(),
            !readonly,
            "{n} layers, readonly {readonly}: {write:?}"
        );
        if !readonly {
            assert!(dir.join("upper/new").exists());
        }
        fs.remove(&dir).await.expect("remove");
        fs.remove(&dir).await.expect("remove again");
        assert!(!dir.exists());
        assert!(lowers[0].join("f0").exists(), "a layer was touched");
        assert!(!lowers[0].join("new").exists());
    }
    assert!(!mounted(tmp.path()));
}
