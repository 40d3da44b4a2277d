//! The container's root: propagation of the new mount namespace, the rootfs bound onto
//! itself, the spec mounts, /dev, pivot_root, and after it masked and read-only paths.
//! (/dev/console is the terminal's, bound after pivot_root: [`super::console`].)

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::unistd::{Gid, Uid, chown, fchdir, pivot_root};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::error::{InitError, Result, Step};
use super::mount_opts;
use super::mounts::{self, CgroupSources, mkdir_all, remount, touch};
use super::securejoin::secure_join;
use crate::ns::mountinfo;

/// Host nodes bound into every container with a private /dev (bind mounts work where
/// mknod would not, e.g. in a user namespace).
const DEFAULT_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Everything done below the rootfs before pivot_root.
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path, cgroups: &CgroupSources) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let prop = match linux.rootfs_propagation().as_deref() {
        None | Some("") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some(p) => mount_opts::propagation(p).ok_or_else(|| {
            InitError::new("rootfs propagation", format!("unknown propagation {p:?}"))
        })?,
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>).step("rootfs propagation: /")?;
    // pivot_root refuses a new root whose parent mount is shared.
    let parent = parent_mount(rootfs);
    mount(
        None::<&str>,
        &parent,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step(format!("rootfs propagation: {}", parent.display()))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .step(format!("bind rootfs {}", rootfs.display()))?;
    let spec_mounts = spec.mounts().clone().unwrap_or_default();
    for m in &spec_mounts {
        mounts::mount_one(rootfs, bundle, m, cgroups)?;
    }
    let private_dev = spec_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && m.typ().as_deref() != Some("bind")
            && !m
                .options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    });
    if private_dev {
        for d in linux.devices().iter().flatten() {
            create_device(rootfs, d)?;
        }
        default_devices(rootfs)?;
        dev_symlinks(rootfs)?;
    }
    Ok(())
}

/// The mount point holding `path` (longest mount point prefix).
fn parent_mount(path: &Path) -> PathBuf {
    let path = mountinfo::canonical(path);
    mountinfo::mounts()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn create_device(rootfs: &Path, d: &LinuxDevice) -> Result<()> {
    let dest = secure_join(rootfs, d.path())?;
    let step = format!("create device {}", d.path().display());
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(InitError::new(step, "type \"a\" is not a node type")),
    };
    if let Some(parent) = dest.parent() {
        mkdir_all(parent)?;
    }
    if std::fs::symlink_metadata(&dest).is_ok() {
        std::fs::remove_file(&dest).step(&step)?;
    }
    let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
    let dev = makedev(d.major() as u64, d.minor() as u64);
    match mknod(&dest, kind, Mode::from_bits_truncate(perm), dev) {
        Ok(()) => {
            std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(perm))
                .step(&step)?;
            chown(
                &dest,
                Some(Uid::from_raw(d.uid().unwrap_or(0))),
                Some(Gid::from_raw(d.gid().unwrap_or(0))),
            )
            .step(&step)
        }
        // No CAP_MKNOD: bind the host's node of the same path instead.
        Err(nix::errno::Errno::EPERM) => {
            bind_node(d.path(), &dest).map_err(|e| InitError::new(step, e))
        }
        Err(e) => Err(InitError::new(step, format!("{}: {e}", dest.display()))),
    }
}

fn bind_node(host: &Path, dest: &Path) -> Result<()> {
    touch(dest)?;
    mount(
        Some(host),
        dest,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step(format!(
        "bind device {} on {}",
        host.display(),
        dest.display()
    ))
}

fn default_devices(rootfs: &Path) -> Result<()> {
    for name in DEFAULT_DEVICES {
        let dest = rootfs.join("dev").join(name);
        if std::fs::symlink_metadata(&dest).is_ok() {
            continue; // a spec device of the same name wins
        }
        bind_node(&Path::new("/dev").join(name), &dest)?;
    }
    Ok(())
}

fn dev_symlinks(rootfs: &Path) -> Result<()> {
    let dev = rootfs.join("dev");
    let ptmx = dev.join("ptmx");
    if std::fs::symlink_metadata(&ptmx).is_ok() {
        std::fs::remove_file(&ptmx).step(format!("remove {}", ptmx.display()))?;
    }
    let mut links = vec![
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // runc adds /dev/core where the kernel has /proc/kcore (a masked path in containers).
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlink(target, dev.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(InitError::new(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

/// pivot_root(".", ".") then lazily unmounting the old root stacked on top: no put_old
/// dir is needed in the image.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let step = format!("pivot_root {}", rootfs.display());
    let old = open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(&step)?;
    let new = open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(&step)?;
    let result = (|| -> std::result::Result<(), String> {
        fchdir(new).map_err(|e| format!("chdir: {e}"))?;
        pivot_root(".", ".").map_err(|e| e.to_string())?;
        fchdir(old).map_err(|e| format!("chdir to the old root: {e}"))?;
        // Slave first, so the unmount does not propagate to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("old root propagation: {e}"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("unmount the old root: {e}"))?;
        std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
    })();
    let _ = nix::unistd::close(old);
    let _ = nix::unistd::close(new);
    result.map_err(|e| InitError::new(step, e))
}

/// After pivot_root: read-only paths, then masked paths (as runc orders them).
pub fn protect_paths(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    for p in linux.readonly_paths().iter().flatten() {
        let path = Path::new(p);
        match mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => remount(path, MsFlags::MS_RDONLY | MsFlags::MS_REC)
                .map_err(|e| InitError::new(format!("readonly path {p}"), e))?,
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(InitError::new(format!("readonly path {p}"), e)),
        }
    }
    for p in linux.masked_paths().iter().flatten() {
        mask(Path::new(p)).map_err(|e| InitError::new(format!("masked path {p}"), e))?;
    }
    Ok(())
}

fn mask(path: &Path) -> std::result::Result<(), nix::errno::Errno> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(_) => return Ok(()), // nothing to hide
    };
    if md.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

/// root.readonly: the rootfs bind (now /) remounted read-only; mounts on it keep theirs.
pub fn readonly_root() -> Result<()> {
    remount(Path::new("/"), MsFlags::MS_RDONLY).map_err(|e| InitError::new("readonly rootfs", e))
}
