//! Pod files for real: resolv.conf/hosts/hostname, the shm tmpfs or the host's /dev/shm,
//! removal without leftovers. Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_core::pod::files;
use berth_core::pod::ports::{PodFiles, PodFilesRequest};
use berth_linux::ns::mountinfo;
use berth_linux::podfiles::LinuxPodFiles;

fn root() -> bool {
    let ok = nix::unistd::geteuid().is_root();
    if !ok {
        eprintln!("skipped: needs root");
    }
    ok
}

fn request(dir: PathBuf, private_shm: bool, resolv: Option<String>) -> PodFilesRequest {
    PodFilesRequest {
        dir,
        resolv_conf: resolv,
        hosts: files::hosts("web-0", None),
        hostname: "web-0".into(),
        private_shm,
        shm_size_bytes: 8 << 20,
    }
}

fn mounts_below(dir: &Path) -> Vec<mountinfo::MountEntry> {
    mountinfo::mounts_under(&std::fs::canonicalize(dir).unwrap()).unwrap()
}

#[tokio::test]
async fn private_shm_tmpfs() {
    if !root() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-test-files-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("pods/p1");
    let pf = LinuxPodFiles::new();
    let req = request(dir.clone(), true, Some("nameserver 10.0.0.10\n".into()));
    pf.prepare(&req).await.unwrap();
    // A retried prepare is harmless and does not stack mounts.
    pf.prepare(&req).await.unwrap();

    assert_eq!(
        std::fs::read_to_string(dir.join("resolv.conf")).unwrap(),
        "nameserver 10.0.0.10\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hostname")).unwrap(),
        "web-0\n"
    );
    assert!(
        std::fs::read_to_string(dir.join("hosts"))
            .unwrap()
            .starts_with("127.0.0.1\tlocalhost")
    );
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
    let mounts = mounts_below(&dir);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].fs_type, "tmpfs");
    let opts = mount_options(&dir.join("shm"));
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(o), "{opts}");
    }
    assert!(opts.contains("size=8192k"), "{opts}");
    assert_eq!(
        std::fs::metadata(dir.join("shm")).unwrap().mode() & 0o7777,
        0o1777
    );
    std::fs::write(dir.join("shm/berth-x"), b"x").unwrap();

    pf.write_hosts(
        &dir,
        &files::hosts("web-0", Some("10.88.0.5".parse().unwrap())),
    )
    .await
    .unwrap();
    assert!(
        std::fs::read_to_string(dir.join("hosts"))
            .unwrap()
            .ends_with("10.88.0.5\tweb-0\n")
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 4, "temp files left: {names:?}");

    pf.remove(&dir).await.unwrap();
    assert!(!dir.exists());
    assert!(mounts_below(tmp.path()).is_empty());
    pf.remove(&dir).await.unwrap();
}

/// The superblock and per-mount options of the mount at `p`.
fn mount_options(p: &Path) -> String {
    let canon = std::fs::canonicalize(p).unwrap();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .find(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap()))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn host_shm_is_bound_and_survives_removal() {
    if !root() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-test-files-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("pods/p2");
    let pf = LinuxPodFiles::new();
    // A marker in the node's /dev/shm must survive the pod's removal.
    let marker = Path::new("/dev/shm").join(format!("berth-test-marker-{}", std::process::id()));
    std::fs::write(&marker, b"keep").unwrap();
    pf.prepare(&request(dir.clone(), false, None))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.join("resolv.conf")).unwrap(),
        std::fs::read("/etc/resolv.conf").unwrap()
    );
    assert!(
        dir.join("shm").join(marker.file_name().unwrap()).exists(),
        "host /dev/shm not bound"
    );
    pf.remove(&dir).await.unwrap();
    assert!(
        marker.exists(),
        "removal went through into the node's /dev/shm"
    );
    std::fs::remove_file(&marker).unwrap();
    assert!(!dir.exists());
    assert!(mounts_below(tmp.path()).is_empty());
}

#[tokio::test]
async fn remove_never_deletes_through_a_foreign_mount() {
    if !root() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-test-files-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("pods/p3");
    let pf = LinuxPodFiles::new();
    pf.prepare(&request(dir.clone(), true, None)).await.unwrap();
    // Something else got mounted inside the pod dir (a bind of a host dir, or a pin that
    // came back through propagation): removal unmounts it and never deletes through it.
    let host = tmp.path().join("host-data");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("keep"), b"x").unwrap();
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    nix::mount::mount(
        Some(&host),
        &other,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    pf.remove(&dir).await.unwrap();
    assert!(!dir.exists());
    assert!(
        host.join("keep").exists(),
        "the bind-mounted host data survives"
    );
    assert!(mounts_below(tmp.path()).is_empty());
}
