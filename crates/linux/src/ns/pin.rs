//! Creating a pod's namespaces and pinning them with bind mounts of their nsfs files.
//!
//! Everything here is blocking and runs on a thread of its own that exits afterwards:
//! unshare(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS) (or setns into the namespaces a pod's
//! user namespace owns, see userns.rs) moves only the calling thread, which must never go
//! back to a pool.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Child;

use berth_core::pod::ports::{NamespaceRequest, PodError};
use berth_core::pod::record::{NamespaceMode, PodNamespaces};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use super::init;
use super::mountinfo;

/// The namespaces a pod pins, with their file name under the pin dir.
const KINDS: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
];
/// The pin of the pod's user namespace (mode POD).
const USER: &str = "user";

/// Creates the namespaces of `req` from the calling (dedicated) thread. On error, what
/// was done is undone before returning.
pub(crate) fn create(
    req: &NamespaceRequest,
    init_exe: &Path,
) -> Result<(PodNamespaces, Option<Child>), PodError> {
    let mut done = PodNamespaces::default();
    match create_steps(req, init_exe, &mut done) {
        Ok(child) => Ok((done, child)),
        Err(e) => {
            if let Err(undo) = remove(&done, &req.pin_dir) {
                tracing::warn!(pod = %req.pod_id, error = %undo, "undoing namespace creation");
            }
            Err(e)
        }
    }
}

fn create_steps(
    req: &NamespaceRequest,
    init_exe: &Path,
    done: &mut PodNamespaces,
) -> Result<Option<Child>, PodError> {
    let modes = req.modes;
    // Joining another pod's network namespace (pinned by that pod): pin it as ours too.
    let join_net = req
        .join_net
        .as_ref()
        .filter(|_| modes.network == NamespaceMode::Pod);
    let own_net = modes.network == NamespaceMode::Pod && join_net.is_none();
    let own_ipc = modes.ipc == NamespaceMode::Pod;
    // UTS follows the network namespace (hostNetwork ⇒ the node's hostname).
    let own_uts = modes.network != NamespaceMode::Node;
    let wanted: Vec<(&str, CloneFlags)> = KINDS
        .iter()
        .copied()
        .filter(|(name, _)| match *name {
            "net" => own_net,
            "ipc" => own_ipc,
            _ => own_uts,
        })
        .collect();
    std::fs::create_dir_all(&req.pin_dir).map_err(|e| {
        PodError::failed(
            "create namespace pin dir",
            format!("{}: {e}", req.pin_dir.display()),
        )
    })?;
    if !wanted.is_empty() || req.userns.is_some() {
        make_shared_mount(&req.pin_dir)?;
    }
    let flags = wanted
        .iter()
        .fold(CloneFlags::empty(), |acc, (_, f)| acc | *f);
    if let Some(userns) = &req.userns {
        // Made by a child process (see userns.rs), pinned from it, then joined by this
        // thread as root of the parent user namespace, which may enter them all.
        let holder = super::userns::create(userns, flags)?;
        let pin = req.pin_dir.join(USER);
        pin_ns(&holder.ns_path(USER), &pin)?;
        done.user = Some(pin);
        for (name, flag) in &wanted {
            let pin = req.pin_dir.join(name);
            pin_ns(&holder.ns_path(name), &pin)?;
            set_pin(done, name, pin.clone());
            let f = File::open(&pin).map_err(|e| {
                PodError::failed("enter pod namespace", format!("{}: {e}", pin.display()))
            })?;
            setns(&f, *flag).map_err(|e| {
                PodError::failed(
                    "enter pod namespace",
                    format!("setns {}: {e}", pin.display()),
                )
            })?;
        }
    } else if !flags.is_empty() {
        unshare(flags).map_err(|e| PodError::failed("unshare namespaces", e))?;
    }
    if own_uts {
        nix::unistd::sethostname(&req.hostname)
            .map_err(|e| PodError::failed("set hostname", format!("{:?}: {e}", req.hostname)))?;
    }
    if own_net {
        loopback_up()?;
    }
    if let Some(src) = join_net {
        let pin = req.pin_dir.join("net");
        if wanted.is_empty() && req.userns.is_none() {
            make_shared_mount(&req.pin_dir)?;
        }
        pin_ns(&src.display().to_string(), &pin)?;
        done.net = Some(pin);
    }
    for (name, _) in &wanted {
        let pin = req.pin_dir.join(name);
        if req.userns.is_none() {
            pin_ns(&format!("/proc/thread-self/ns/{name}"), &pin)?;
            set_pin(done, name, pin);
        }
    }
    if modes.pid != NamespaceMode::Pod {
        return Ok(None);
    }
    // Spawned from this thread, the init inherits the namespaces just created.
    let mut child = init::spawn_init(init_exe)?;
    let pid = i32::try_from(child.id())
        .map_err(|e| PodError::failed("start pod init", format!("pid {}: {e}", child.id())))?;
    done.init_pid = Some(pid);
    let Some(start) = init::start_time(pid).filter(|_| matches!(child.try_wait(), Ok(None))) else {
        let _ = child.kill();
        let status = child.wait();
        return Err(PodError::failed(
            "start pod init",
            format!("pod init {pid} exited right after it started ({status:?})"),
        ));
    };
    done.init_start_time = Some(start);
    Ok(Some(child))
}

/// Makes `dir` a mount of its own with shared propagation, as `ip netns` does for
/// /run/netns: pins unmounted here are then unmounted in mount namespaces cloned from ours
/// too, so a copy there cannot keep a namespace alive.
fn make_shared_mount(dir: &Path) -> Result<(), PodError> {
    let step = "prepare namespace pin dir";
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => return Ok(()),
        // EINVAL: not a mount point yet.
        Err(Errno::EINVAL) => {}
        Err(e) => return Err(PodError::failed(step, format!("{}: {e}", dir.display()))),
    }
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| PodError::failed(step, format!("bind {} on itself: {e}", dir.display())))?;
    shared().map_err(|e| PodError::failed(step, format!("make {} shared: {e}", dir.display())))
}

fn set_pin(done: &mut PodNamespaces, name: &str, pin: PathBuf) {
    match name {
        "net" => done.net = Some(pin),
        "ipc" => done.ipc = Some(pin),
        _ => done.uts = Some(pin),
    }
}

/// Bind-mounts the namespace file `src` (`/proc/.../ns/<name>`) onto `pin` (an empty file).
fn pin_ns(src: &str, pin: &Path) -> Result<(), PodError> {
    let step = "pin namespace";
    File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(pin)
        .map_err(|e| PodError::failed(step, format!("creating {}: {e}", pin.display())))?;
    mount(Some(src), pin, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| PodError::failed(step, format!("bind {src} on {}: {e}", pin.display())))
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> Result<(), PodError> {
    let step = "bring up loopback";
    // SAFETY: socket() returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(PodError::failed(step, Errno::last()));
    }
    // SAFETY: fd is a fresh socket nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read/write the ifreq we pass, which outlives the calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(PodError::failed(step, Errno::last()));
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(PodError::failed(step, Errno::last()));
        }
    }
    Ok(())
}

/// Stops the init, unpins every namespace and deletes the pin dir. Idempotent; blocking
/// (but namespace-neutral: any thread will do).
pub(crate) fn remove(ns: &PodNamespaces, pin_dir: &Path) -> Result<(), PodError> {
    if let (Some(pid), Some(start)) = (ns.init_pid, ns.init_start_time) {
        init::kill_init(pid, start)?;
    }
    // The recorded pins, and the standard names too: a crash may have left a pin that
    // never made it into the record.
    let mut pins: Vec<PathBuf> = [&ns.net, &ns.ipc, &ns.uts, &ns.user]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for name in KINDS.iter().map(|(n, _)| *n).chain([USER]) {
        let p = pin_dir.join(name);
        if !pins.contains(&p) {
            pins.push(p);
        }
    }
    for pin in &pins {
        unmount_all(pin)?;
        match std::fs::remove_file(pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PodError::failed(
                    "remove namespace pin",
                    format!("{}: {e}", pin.display()),
                ));
            }
        }
    }
    unmount_all(pin_dir)?;
    let canon = mountinfo::canonical(pin_dir);
    let left =
        mountinfo::mounts_under(&canon).map_err(|e| PodError::failed("read mountinfo", e))?;
    if let Some(m) = left.first() {
        return Err(PodError::failed(
            "remove namespace pin dir",
            format!("{} is still mounted", m.mount_point.display()),
        ));
    }
    match std::fs::remove_dir_all(pin_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PodError::failed(
            "remove namespace pin dir",
            format!("{}: {e}", pin_dir.display()),
        )),
    }
}

/// Unmounts everything stacked at `path` (lazily: a pin may be open somewhere). A path
/// that is missing or not a mount point is fine.
pub fn unmount_all(path: &Path) -> Result<(), PodError> {
    for _ in 0..16 {
        match umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
            Err(e) => {
                return Err(PodError::failed(
                    "unmount",
                    format!("{}: {e}", path.display()),
                ));
            }
        }
    }
    Err(PodError::failed(
        "unmount",
        format!("{}: still mounted after 16 unmounts", path.display()),
    ))
}
