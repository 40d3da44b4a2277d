//! Entering the spec's namespaces: ones with a path are joined (setns), the others created
//! (unshare). PID and time namespaces only apply to children: the caller forks after this.
//! A new cgroup namespace is left to the caller, to create once it sits in its cgroup.
//!
//! A user namespace (a pod's, by path) is opened here but joined last, by [`join_user`],
//! right before the process drops to its user: everything before (cgroup, mounts,
//! pivot_root, /proc, sysfs, rlimits) is done as root of the node, which may act in the
//! pod's namespaces (they belong to a child of the node's user namespace) and may read
//! and mount host paths the container's mapped ids could not reach. The mount and PID
//! namespaces made here thus belong to the node's user namespace, as runc makes them
//! when it runs as root, so the container cannot change its mounts; its net, IPC and UTS
//! namespaces belong to the pod's user namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::error::{InitError, Result, Step};

fn flag(t: LinuxNamespaceType) -> Result<CloneFlags> {
    Ok(match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
    })
}

/// What the spec asked for, after [`enter`].
#[derive(Debug, Default)]
pub struct Entered {
    /// Namespaces created here (not joined).
    pub new: Vec<LinuxNamespaceType>,
    /// Namespaces joined by path.
    pub joined: Vec<LinuxNamespaceType>,
    /// The user namespace to join last ([`join_user`]), open; also the idmapping of the
    /// container's idmapped mounts.
    pub user: Option<(File, String)>,
}

/// Joins the namespaces with a path (all opened first, the mount namespace joined last so
/// the other paths still resolve on the host), then unshares the new ones except cgroup.
pub fn enter(namespaces: &[LinuxNamespace]) -> Result<Entered> {
    let mut out = Entered::default();
    let mut to_join: Vec<(LinuxNamespaceType, File, String)> = Vec::new();
    let mut new_flags = CloneFlags::empty();
    for ns in namespaces {
        let f = flag(ns.typ())?;
        if ns.typ() == LinuxNamespaceType::User {
            let Some(path) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) else {
                return Err(InitError::new(
                    "namespaces",
                    "berth's runtime joins an existing user namespace (a pod's, by path) \
                     and cannot create one per container",
                ));
            };
            let file = File::open(path).step(format!("open user namespace {}", path.display()))?;
            out.user = Some((file, path.display().to_string()));
            continue;
        }
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                let file = File::open(path).step(format!(
                    "open {} namespace {}",
                    ns.typ(),
                    path.display()
                ))?;
                to_join.push((ns.typ(), file, path.display().to_string()));
            }
            _ => {
                out.new.push(ns.typ());
                if ns.typ() != LinuxNamespaceType::Cgroup {
                    new_flags |= f;
                }
            }
        }
    }
    to_join.sort_by_key(|(t, ..)| *t == LinuxNamespaceType::Mount);
    for (t, file, path) in &to_join {
        setns(file.as_fd(), flag(*t)?).step(format!("join {t} namespace {path}"))?;
        out.joined.push(*t);
    }
    if !new_flags.is_empty() {
        unshare(new_flags).step(format!("unshare {new_flags:?}"))?;
    }
    Ok(out)
}

/// Joins the user namespace [`enter`] opened, if any. The process must be single-threaded;
/// afterwards it holds every capability in that namespace and none in the node's.
pub fn join_user(entered: &Entered) -> Result<()> {
    if let Some((file, path)) = &entered.user {
        setns(file.as_fd(), CloneFlags::CLONE_NEWUSER)
            .step(format!("join user namespace {path}"))?;
    }
    Ok(())
}

/// Creates the cgroup namespace, once the process is in its cgroup (its root is then the
/// container's cgroup).
pub fn unshare_cgroup() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWCGROUP).step("unshare the cgroup namespace")
}

/// For exec: the namespaces of a running process (`/proc/<pid>/ns/*`) that differ from
/// ours, as OCI namespace entries, in join order.
pub fn of_process(pid: i32) -> Result<Vec<LinuxNamespace>> {
    use std::os::unix::fs::MetadataExt;
    let kinds = [
        ("user", LinuxNamespaceType::User),
        ("cgroup", LinuxNamespaceType::Cgroup),
        ("ipc", LinuxNamespaceType::Ipc),
        ("uts", LinuxNamespaceType::Uts),
        ("net", LinuxNamespaceType::Network),
        ("pid", LinuxNamespaceType::Pid),
        ("mnt", LinuxNamespaceType::Mount),
    ];
    let mut out = Vec::new();
    for (name, typ) in kinds {
        let theirs = Path::new("/proc")
            .join(pid.to_string())
            .join("ns")
            .join(name);
        let md =
            std::fs::metadata(&theirs).step(format!("container namespace {}", theirs.display()))?;
        let mine = std::fs::metadata(Path::new("/proc/self/ns").join(name)).ok();
        if mine.is_some_and(|m| m.ino() == md.ino() && m.dev() == md.dev()) {
            continue;
        }
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ);
        ns.set_path(Some(theirs));
        out.push(ns);
    }
    Ok(out)
}
