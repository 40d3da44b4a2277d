//! The spec's mounts, done below the rootfs before pivot_root: destinations resolved inside
//! the rootfs, mount points created to match the source (dir or file), bind remounts for
//! flags, propagation last.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};
use oci_spec::runtime::Mount;

use super::error::{InitError, Result, Step};
use super::mount_opts::{self, IdmapOpt, MountOpts};
use super::securejoin::secure_join;

/// Where each cgroup mount's content comes from: (name below the mount point, host dir);
/// name "" means the mount point itself (v2).
pub type CgroupSources = Vec<(String, PathBuf)>;

fn mount_err(what: &str, target: &Path, e: nix::errno::Errno) -> InitError {
    InitError::new(
        format!("mount {what}"),
        format!("{}: {e}", target.display()),
    )
}

pub fn mkdir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).step(format!("create mount point {}", dir.display()))
}

/// Creates an empty file at `path` (parents included) unless something is there already.
pub fn touch(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(drop)
        .step(format!("create mount point {}", path.display()))
}

/// Bind remount of `target` with `flags` added to the flags the mount already has (the
/// kernel resets the per-mount flags a bind remount does not name).
pub fn remount(target: &Path, flags: MsFlags) -> Result<()> {
    let mut keep = MsFlags::empty();
    if let Ok(st) = statvfs(target) {
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        ] {
            if f.contains(fs) {
                keep |= ms;
            }
        }
    }
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep | flags;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| mount_err("(remount)", target, e))
}

fn set_propagation(target: &Path, props: &[MsFlags]) -> Result<()> {
    for p in props {
        mount(None::<&str>, target, None::<&str>, *p, None::<&str>)
            .map_err(|e| mount_err("(propagation)", target, e))?;
    }
    Ok(())
}

/// Flags a bind remount has to apply (everything but the bind itself).
fn remount_flags(o: &MountOpts) -> MsFlags {
    o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
}

/// Mounts an idmapped clone of `src` (its submounts too with `recursive`) at `dest`:
/// open_tree(OPEN_TREE_CLONE) → mount_setattr(MOUNT_ATTR_IDMAP, `userns`) → move_mount.
/// Must run as root of the node's user namespace (which owns the source filesystems).
pub fn idmapped_bind(
    src: &Path,
    dest: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
    what: &str,
) -> Result<()> {
    let step = format!("idmapped mount of {what}");
    let tree = crate::mount_api::clone_tree(src, recursive)
        .map_err(|e| InitError::new(&step, format!("open_tree {}: {e}", src.display())))?;
    crate::mount_api::idmap(tree.as_fd(), userns, recursive).map_err(|e| {
        let fs = fs_type(src);
        let why = match e {
            nix::errno::Errno::EINVAL => format!(
                "filesystem {fs} of {} cannot be idmapped on this kernel ({}); idmapped mounts \
                 need ext4/xfs/btrfs (Linux 5.12+), overlayfs (5.19+) or tmpfs (6.3+)",
                src.display(),
                kernel_release()
            ),
            e => format!("{} ({fs}): {e}", src.display()),
        };
        InitError::new(&step, why)
    })?;
    crate::mount_api::attach(tree.as_fd(), dest)
        .map_err(|e| InitError::new(&step, format!("move_mount to {}: {e}", dest.display())))
}

/// The filesystem type of `path` from statfs, for error messages.
fn fs_type(path: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else {
        return "(unknown)".into();
    };
    let magic = st.filesystem_type().0;
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        _ => return format!("with magic {magic:#x}"),
    };
    name.into()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown kernel".into())
}

/// Does one spec mount below `rootfs`. Relative bind sources are relative to `bundle`.
/// `idmap`: the container's user namespace, for `idmap`/`ridmap` mounts.
pub fn mount_one(
    rootfs: &Path,
    bundle: &Path,
    m: &Mount,
    cgroups: &CgroupSources,
    idmap: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let dest = secure_join(rootfs, m.destination())?;
    let o = mount_opts::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().clone().unwrap_or_default();
    let what = m.destination().display().to_string();
    if o.bind || typ == "bind" {
        let src = m.source().clone().ok_or_else(|| {
            InitError::new(format!("mount {what}"), "bind mount without a source")
        })?;
        let src = if src.is_relative() {
            bundle.join(src)
        } else {
            src
        };
        let md = std::fs::metadata(&src).step(format!("mount {what}: source {}", src.display()))?;
        if md.is_dir() {
            mkdir_all(&dest)?;
        } else {
            touch(&dest)?;
        }
        match (o.idmap, idmap) {
            (Some(kind), Some(userns)) => {
                let recursive = kind == IdmapOpt::Recursive;
                idmapped_bind(&src, &dest, userns, recursive, &what)?;
            }
            (Some(_), None) => {
                return Err(InitError::new(
                    format!("mount {what}"),
                    "idmap/ridmap mounts need the container to join a user namespace",
                ));
            }
            (None, _) => {
                let flags = MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC);
                mount(Some(&src), &dest, None::<&str>, flags, None::<&str>)
                    .map_err(|e| mount_err(&what, &dest, e))?;
            }
        }
        if !remount_flags(&o).is_empty() {
            remount(&dest, remount_flags(&o))?;
        }
        if o.recursive_readonly {
            crate::mount_api::make_recursive_readonly(&dest).map_err(|e| {
                InitError::new(
                    format!("mount {what} recursively read-only (rro)"),
                    format!(
                        "{}: {e} (mount_setattr needs Linux 5.12 or later)",
                        dest.display()
                    ),
                )
            })?;
        }
        return set_propagation(&dest, &o.propagation);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(&dest, &what, &o, cgroups);
    }
    mkdir_all(&dest)?;
    let source = m
        .source()
        .clone()
        .unwrap_or_else(|| PathBuf::from(typ.as_str()));
    let data = o.data();
    mount(
        Some(&source),
        &dest,
        Some(typ.as_str()),
        o.flags,
        data.as_deref(),
    )
    .map_err(|e| mount_err(&what, &dest, e))?;
    set_propagation(&dest, &o.propagation)
}

/// The cgroup filesystem: the container's own cgroup dirs bound in (a tmpfs holds the v1
/// hierarchies), read-only when asked. Binding the container's dir works with and without
/// a cgroup namespace and shows nothing of the host's tree.
fn mount_cgroup(dest: &Path, what: &str, o: &MountOpts, cgroups: &CgroupSources) -> Result<()> {
    mkdir_all(dest)?;
    let rest = remount_flags(o);
    let single = cgroups.len() == 1 && cgroups[0].0.is_empty();
    if !single {
        let fl = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), dest, Some("tmpfs"), fl, Some("mode=755"))
            .map_err(|e| mount_err(what, dest, e))?;
    }
    for (name, src) in cgroups {
        let target = if name.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(name)
        };
        mkdir_all(&target)?;
        mount(
            Some(src),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| mount_err(what, &target, e))?;
        remount(&target, rest)?;
    }
    if !single && o.readonly() {
        remount(dest, rest)?;
    }
    Ok(())
}
