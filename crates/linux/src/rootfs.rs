//! Container root filesystems: overlayfs of image snapshots plus a writable layer, the
//! real [`Rootfs`] port. Layout under the container's dir: `rootfs/` (the mount point),
//! `upper/` and `work/` (the writable layer).
//!
//! overlay takes its lower dirs top layer first, so the base-first list is reversed. The
//! mount options must fit in one page; long layer lists are mounted with paths relative to
//! their common parent, from a thread that unshared its fs context (CLONE_FS) and chdir'ed
//! there — the cwd of berthd's other threads never changes (containerd forks for this).
//! Lists too long even so (~60 snapshot dirs) go through the new mount API, one
//! `lowerdir+` per layer (Linux 6.8+).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use berth_core::runtime::{Rootfs, RuntimeError};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::ns::mountinfo;

/// mount(2) copies at most one page of options.
const MAX_OPTIONS: usize = 4096 - 1;

#[derive(Debug, Clone, Default)]
pub struct OverlayRootfs;

impl OverlayRootfs {
    pub fn new() -> Self {
        OverlayRootfs
    }
}

/// The mount to make: overlay (with options and a cwd for relative lowers) or a bind.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Overlay {
        options: String,
        cwd: Option<PathBuf>,
    },
    /// fsopen/fsconfig: each lower (top first) given separately.
    Layered {
        lowers: Vec<PathBuf>,
        upper: Option<(PathBuf, PathBuf)>,
    },
    Bind {
        source: PathBuf,
        readonly: bool,
    },
}

fn plan(dir: &Path, lowers: &[PathBuf], readonly: bool) -> Result<Plan, RuntimeError> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    match lowers {
        // An image without layers: the (empty) writable dir itself.
        [] => {
            return Ok(Plan::Bind {
                source: upper,
                readonly,
            });
        }
        // One read-only layer needs no overlay (containerd binds it too).
        [only] if readonly => {
            return Ok(Plan::Bind {
                source: only.clone(),
                readonly: true,
            });
        }
        _ => {}
    }
    for l in lowers {
        let s = l.to_string_lossy();
        if s.contains([':', ',']) || !l.is_absolute() {
            return Err(RuntimeError::InvalidArgument(format!(
                "layer path {s} must be absolute and free of ':' and ','"
            )));
        }
    }
    let tail = if readonly {
        String::new()
    } else {
        format!(",upperdir={},workdir={}", upper.display(), work.display())
    };
    let top_first: Vec<&PathBuf> = lowers.iter().rev().collect();
    let joined = |paths: Vec<String>| paths.join(":");
    let options = format!(
        "lowerdir={}{tail}",
        joined(top_first.iter().map(|p| p.display().to_string()).collect())
    );
    if options.len() <= MAX_OPTIONS {
        return Ok(Plan::Overlay { options, cwd: None });
    }
    let parent = common_parent(&top_first);
    let rel: Vec<String> = top_first
        .iter()
        .map(|p| p.strip_prefix(&parent).unwrap_or(p).display().to_string())
        .collect();
    let options = format!("lowerdir={}{tail}", joined(rel));
    if options.len() > MAX_OPTIONS {
        return Ok(Plan::Layered {
            lowers: top_first.into_iter().cloned().collect(),
            upper: (!readonly).then_some((upper, work)),
        });
    }
    Ok(Plan::Overlay {
        options,
        cwd: Some(parent),
    })
}

/// The longest common ancestor dir of absolute paths.
fn common_parent(paths: &[&PathBuf]) -> PathBuf {
    let mut parent = paths
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    while !paths.iter().all(|p| p.starts_with(&parent)) {
        if !parent.pop() {
            return PathBuf::from("/");
        }
    }
    parent
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::failed("mount rootfs", format!("{what} {}: {e}", path.display()))
}

fn do_mount(dir: &Path, target: &Path, plan: &Plan) -> Result<(), RuntimeError> {
    for d in [target.to_path_buf(), dir.join("upper"), dir.join("work")] {
        std::fs::create_dir_all(&d).map_err(|e| failed("creating", &d, e))?;
    }
    match plan {
        Plan::Bind { source, readonly } => {
            mount(
                Some(source.as_path()),
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| failed("bind-mounting onto", target, e))?;
            if *readonly {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
                    let _ = umount2(target, MntFlags::MNT_DETACH);
                    return Err(failed("making read-only", target, e));
                }
            }
            Ok(())
        }
        Plan::Overlay { options, cwd } => {
            if let Some(cwd) = cwd {
                // This thread only: CLONE_FS gives it its own cwd.
                unshare(CloneFlags::CLONE_FS)
                    .map_err(|e| failed("unshare(CLONE_FS) for", cwd, e))?;
                std::env::set_current_dir(cwd).map_err(|e| failed("chdir", cwd, e))?;
            }
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(|e| {
                failed(
                    "mounting overlay at",
                    target,
                    format!("{e} (options {options})"),
                )
            })
        }
        Plan::Layered { lowers, upper } => mount_layered(target, lowers, upper.as_ref())
            .map_err(|e| failed("mounting overlay (lowerdir+) at", target, e)),
    }
}

// From linux/mount.h (not in the libc crate).
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cstr(s: &str) -> Result<std::ffi::CString, Errno> {
    std::ffi::CString::new(s).map_err(|_| Errno::EINVAL)
}

fn check(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 { Err(Errno::last()) } else { Ok(rc) }
}

fn fd_of(rc: libc::c_long) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `rc` is a fresh fd the kernel just returned; nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(rc as i32) }
}

/// overlay through fsopen → fsconfig (one `lowerdir+` per layer) → fsmount → move_mount.
fn mount_layered(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<&(PathBuf, PathBuf)>,
) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let fstype = cstr("overlay")?;
    // SAFETY: fsopen with a valid C string and flags; returns a new fd or -1.
    let fs = fd_of(check(unsafe {
        libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC)
    })?);
    let set = |key: &str, value: &Path| -> Result<(), Errno> {
        let k = cstr(key)?;
        let v = cstr(&value.to_string_lossy())?;
        // SAFETY: fsconfig on our fs context fd with two valid C strings.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        })
        .map(drop)
    };
    for l in lowers {
        set("lowerdir+", l)?;
    }
    if let Some((up, work)) = upper {
        set("upperdir", up)?;
        set("workdir", work)?;
    }
    // SAFETY: fsconfig command without key/value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    // SAFETY: fsmount on the created context; returns a new mount fd or -1.
    let mnt = fd_of(check(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0)
    })?);
    let empty = cstr("")?;
    let to = cstr(&target.to_string_lossy())?;
    // SAFETY: move_mount of our detached mount fd onto an absolute path.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Unmounts `target` until nothing is mounted there; lazily when busy.
fn unmount(target: &Path) -> Result<(), RuntimeError> {
    for _ in 0..16 {
        match umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(Errno::EBUSY) => {
                umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
                    .map_err(|e| failed("unmounting", target, e))?;
            }
            Err(Errno::EINVAL) | Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
            Err(e) => return Err(failed("unmounting", target, e)),
        }
    }
    Err(failed(
        "unmounting",
        target,
        "still mounted after 16 unmounts",
    ))
}

fn remove_blocking(dir: &Path) -> Result<(), RuntimeError> {
    let target = dir.join("rootfs");
    unmount(&target)?;
    let canon = mountinfo::canonical(dir);
    let left =
        mountinfo::mounts_under(&canon).map_err(|e| failed("reading mounts under", dir, e))?;
    if let Some(m) = left.first() {
        // Never recurse into a live mount: that would delete image layers.
        return Err(failed(
            "still mounted:",
            &m.mount_point,
            "refusing to delete",
        ));
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed("removing", dir, e)),
    }
}

/// Runs `f` on a throwaway OS thread (its fs context may be unshared).
async fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-rootfs".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| RuntimeError::failed("mount rootfs", format!("starting a thread: {e}")))?;
    rx.await
        .map_err(|_| RuntimeError::failed("mount rootfs", "the worker thread panicked"))?
}

#[async_trait]
impl Rootfs for OverlayRootfs {
    async fn mount(
        &self,
        dir: &Path,
        lowers: &[PathBuf],
        readonly: bool,
    ) -> Result<PathBuf, RuntimeError> {
        let target = dir.join("rootfs");
        // Already mounted (a container started again after it exited, berthd not restarted
        // since): the mount and its writable layer are kept as they are.
        if mountinfo::is_mount_point(&target).unwrap_or(false) {
            return Ok(target);
        }
        let plan = plan(dir, lowers, readonly)?;
        let dir = dir.to_path_buf();
        let t = target.clone();
        // A cancelled caller leaves a mount behind; remove() (idempotent) undoes it.
        on_thread(move || do_mount(&dir, &t, &plan)).await?;
        Ok(target)
    }

    async fn remove(&self, dir: &Path) -> Result<(), RuntimeError> {
        let dir = dir.to_path_buf();
        on_thread(move || remove_blocking(&dir)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let dir = Path::new("/run/c");
        let l = |s: &str| PathBuf::from(s);
        assert_eq!(
            plan(dir, &[l("/s/1"), l("/s/2")], false).unwrap(),
            Plan::Overlay {
                options: "lowerdir=/s/2:/s/1,upperdir=/run/c/upper,workdir=/run/c/work".into(),
                cwd: None
            }
        );
        assert_eq!(
            plan(dir, &[l("/s/1"), l("/s/2")], true).unwrap(),
            Plan::Overlay {
                options: "lowerdir=/s/2:/s/1".into(),
                cwd: None
            }
        );
        assert_eq!(
            plan(dir, &[l("/s/1")], true).unwrap(),
            Plan::Bind {
                source: l("/s/1"),
                readonly: true
            }
        );
        let many: Vec<PathBuf> = (0..50)
            .map(|i| l(&format!("/var/lib/berth/snapshots/{i:064}/fs")))
            .collect();
        let Plan::Overlay { options, cwd } = plan(dir, &many, false).unwrap() else {
            panic!("not an overlay");
        };
        assert_eq!(cwd, Some(l("/var/lib/berth/snapshots")));
        assert!(options.starts_with(&format!("lowerdir={:064}/fs:", 49)));
        assert!(options.len() <= MAX_OPTIONS);
        let more: Vec<PathBuf> = (0..100)
            .map(|i| l(&format!("/var/lib/berth/snapshots/{i:064}/fs")))
            .collect();
        let Plan::Layered { lowers, upper } = plan(dir, &more, false).unwrap() else {
            panic!("not layered");
        };
        assert_eq!(lowers.first(), more.last());
        assert_eq!(upper, Some((l("/run/c/upper"), l("/run/c/work"))));
    }
}
