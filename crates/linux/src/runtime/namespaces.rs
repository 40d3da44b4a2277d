//! Entering the spec's namespaces: ones with a path are joined (setns), the others created
//! (unshare). PID and time namespaces only apply to children: the caller forks after this.
//! A new cgroup namespace is left to the caller, to create once it sits in its cgroup.

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
        LinuxNamespaceType::User => {
            return Err(InitError::new(
                "namespaces",
                "user namespaces are not supported by berth's runtime",
            ));
        }
    })
}

/// What the spec asked for, after [`enter`].
#[derive(Debug, Default, Clone)]
pub struct Entered {
    /// Namespaces created here (not joined).
    pub new: Vec<LinuxNamespaceType>,
    /// Namespaces joined by path.
    pub joined: Vec<LinuxNamespaceType>,
}

/// Joins the namespaces with a path (all opened first, the mount namespace joined last so
/// the other paths still resolve on the host), then unshares the new ones except cgroup.
pub fn enter(namespaces: &[LinuxNamespace]) -> Result<Entered> {
    let mut out = Entered::default();
    let mut to_join: Vec<(LinuxNamespaceType, File, String)> = Vec::new();
    let mut new_flags = CloneFlags::empty();
    for ns in namespaces {
        let f = flag(ns.typ())?;
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
