//! The new mount API (Linux ≥ 5.12): `mount_setattr` for recursive read-only mounts and
//! idmapped mounts, `open_tree` + `move_mount` to attach a detached, idmapped copy of a
//! mount. libc has the syscall numbers but not the wrappers, so they are raw syscalls here.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// `MOUNT_ATTR_RDONLY` from linux/mount.h.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_IDMAP` from linux/mount.h: needs `userns_fd`.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn setattr(
    dirfd: libc::c_int,
    path: &CString,
    flags: libc::c_uint,
    attr: &MountAttr,
) -> Result<(), Errno> {
    // SAFETY: `path` is a NUL-terminated string and `attr` a live, properly sized
    // mount_attr; the kernel only reads both during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Makes the mount at `path` and every mount below it read-only (`rro`), which a bind
/// remount cannot do: it only changes the top mount.
pub fn make_recursive_readonly(path: &Path) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    setattr(
        libc::AT_FDCWD,
        &cpath(path)?,
        (libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint,
        &attr,
    )
}

/// A detached copy of the mount (tree, with `recursive`) at `path`: `open_tree(OPEN_TREE_CLONE)`.
pub fn clone_tree(path: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let p = cpath(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `p` is NUL-terminated; open_tree returns a new fd we then own.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Idmaps a detached mount (from [`clone_tree`]) with the mapping of the user namespace
/// `userns`. The kernel refuses with EINVAL where the filesystem cannot be idmapped.
pub fn idmap(tree: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    setattr(tree.as_raw_fd(), &CString::default(), flags, &attr)
}

/// Attaches the detached mount `tree` at `target` (`move_mount` with an empty from-path).
pub fn attach(tree: BorrowedFd<'_>, target: &Path) -> Result<(), Errno> {
    let empty = CString::default();
    let to = cpath(target)?;
    // SAFETY: both strings are NUL-terminated and live for the call; `tree` is an open fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}
