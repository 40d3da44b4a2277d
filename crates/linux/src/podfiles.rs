//! The pod's files: resolv.conf, hosts, hostname (written atomically) and its /dev/shm
//! (a private tmpfs, or the node's /dev/shm bound in for host IPC).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use berth_core::pod::files::hostname_file;
use berth_core::pod::ports::{PodError, PodFiles, PodFilesRequest};
use nix::mount::{MsFlags, mount};

use crate::ns::{mountinfo, unmount_all};

/// The node's resolver configuration, copied when the pod brings no DNS config.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
const HOST_SHM: &str = "/dev/shm";

/// The real [`PodFiles`] port.
#[derive(Debug, Clone, Default)]
pub struct LinuxPodFiles;

impl LinuxPodFiles {
    pub fn new() -> Self {
        Self
    }
}

fn failed(step: &'static str, path: &Path, e: impl std::fmt::Display) -> PodError {
    PodError::failed(step, format!("{}: {e}", path.display()))
}

/// Writes `path` through a temp file and a rename, so readers never see half a file.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), PodError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        // No fsync: the pod dir is in the volatile run dir, gone after a reboot anyway.
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed("write pod file", path, e)
    })
}

fn prepare_blocking(req: &PodFilesRequest) -> Result<(), PodError> {
    let dir = &req.dir;
    let existed = dir.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| failed("create pod dir", dir, e))?;
    let result = fill(req);
    if result.is_err() && !existed {
        // Undo: the shm mount (if it was made) and the directory.
        let _ = remove_blocking(dir);
    }
    result
}

fn fill(req: &PodFilesRequest) -> Result<(), PodError> {
    let dir = &req.dir;
    let resolv = match &req.resolv_conf {
        Some(s) => s.clone().into_bytes(),
        None => std::fs::read(HOST_RESOLV_CONF).map_err(|e| {
            failed(
                "copy the node's resolv.conf",
                Path::new(HOST_RESOLV_CONF),
                e,
            )
        })?,
    };
    write_atomic(&dir.join("resolv.conf"), &resolv)?;
    write_atomic(&dir.join("hosts"), req.hosts.as_bytes())?;
    write_atomic(
        &dir.join("hostname"),
        hostname_file(&req.hostname).as_bytes(),
    )?;
    mount_shm(req)
}

fn mount_shm(req: &PodFilesRequest) -> Result<(), PodError> {
    let shm = req.dir.join("shm");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o1777)
        .create(&shm)
        .map_err(|e| failed("create shm dir", &shm, e))?;
    let canon = mountinfo::canonical(&shm);
    // A retried prepare keeps the mount it already made.
    if mountinfo::is_mount_point(&canon).map_err(|e| failed("read mountinfo", &shm, e))? {
        return Ok(());
    }
    if req.private_shm {
        let opts = format!("mode=1777,size={}", req.shm_size_bytes);
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(opts.as_str()),
        )
        .map_err(|e| failed("mount pod shm tmpfs", &shm, e))
    } else {
        mount(
            Some(HOST_SHM),
            &shm,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| failed("bind the node's /dev/shm", &shm, e))
    }
}

fn remove_blocking(dir: &Path) -> Result<(), PodError> {
    unmount_all(&dir.join("shm"))?;
    let canon = mountinfo::canonical(dir);
    // Everything below the pod dir is the pod's own (shm, namespace pins). A pin can come
    // back for a moment through mount propagation from a container's mount namespace that
    // is still being torn down, so unmount what is left, deepest first, a few times.
    for _ in 0..50 {
        let mut left =
            mountinfo::mounts_under(&canon).map_err(|e| failed("read mountinfo", dir, e))?;
        if left.is_empty() {
            break;
        }
        left.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
        for m in &left {
            unmount_all(&m.mount_point)?;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let left = mountinfo::mounts_under(&canon).map_err(|e| failed("read mountinfo", dir, e))?;
    if let Some(m) = left.first() {
        // Never delete through a live mount (that would empty the node's /dev/shm).
        return Err(PodError::failed(
            "remove pod dir",
            format!("{} is still mounted", m.mount_point.display()),
        ));
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed("remove pod dir", dir, e)),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PodError> + Send + 'static,
) -> Result<T, PodError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PodError::failed("pod files", e))?
}

#[async_trait]
impl PodFiles for LinuxPodFiles {
    async fn prepare(&self, req: &PodFilesRequest) -> Result<(), PodError> {
        let req = req.clone();
        blocking(move || prepare_blocking(&req)).await
    }

    async fn write_hosts(&self, dir: &Path, hosts: &str) -> Result<(), PodError> {
        let path: PathBuf = dir.join("hosts");
        let hosts = hosts.to_string();
        blocking(move || write_atomic(&path, hosts.as_bytes())).await
    }

    async fn remove(&self, dir: &Path) -> Result<(), PodError> {
        let dir = dir.to_path_buf();
        blocking(move || remove_blocking(&dir)).await
    }
}
