//! `berthd init --bundle <dir> --id <id>`: creates the container process from an OCI
//! bundle, reports it ready on the sync socket and execs its program on `start`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::cgroup::ContainerCgroup;
use super::error::{InitError, Result, Step};
use super::mounts::CgroupSources;
use super::namespaces::{self, Entered};
use super::process::{self, Identity};
use super::seccomp::{self, Filter};
use super::sync::{self, SYNC_FD, SyncMessage};
use super::{EXIT_EXEC_FAILED, EXIT_SETUP_FAILED, arg, enter_init, fail, fork_and_report};
use crate::cgroup::CgroupMode;

/// Entry point of `init --bundle <dir> --id <container-id>` (`args`: the arguments after
/// `init`). Never returns: on success the process becomes the container's program.
pub fn init_main(args: &[String]) -> ! {
    enter_init();
    let (spec, bundle, entered) = match before_fork(args) {
        Ok(v) => v,
        Err(e) => fail(&e, EXIT_SETUP_FAILED),
    };
    if let Err(e) = fork_and_report() {
        fail(&e, EXIT_SETUP_FAILED);
    }
    // The container process from here on.
    let (proc_, filter, identity) = match setup(&spec, &bundle, &entered) {
        Ok(v) => v,
        Err(e) => fail(&e, EXIT_SETUP_FAILED),
    };
    if sync::send(SYNC_FD, &SyncMessage::Ready).is_err() {
        std::process::exit(EXIT_SETUP_FAILED); // the monitor is gone
    }
    match sync::recv(SYNC_FD) {
        Ok(Some(SyncMessage::Start)) => {}
        Ok(None) => std::process::exit(EXIT_SETUP_FAILED),
        Ok(Some(other)) => fail(
            &InitError::new("wait for start", format!("unexpected message {other:?}")),
            EXIT_SETUP_FAILED,
        ),
        Err(e) => fail(&InitError::new("wait for start", e), EXIT_SETUP_FAILED),
    }
    let err = process::exec(&proc_, filter.as_ref(), &identity);
    fail(&err, EXIT_EXEC_FAILED)
}

fn before_fork(args: &[String]) -> Result<(Spec, PathBuf, Entered)> {
    let bundle = arg(args, "--bundle")
        .ok_or_else(|| InitError::new("arguments", "--bundle <dir> is required"))?;
    let bundle = std::fs::canonicalize(bundle).step(format!("bundle {bundle}"))?;
    let config = bundle.join("config.json");
    let text = std::fs::read(&config).step(format!("read {}", config.display()))?;
    let spec: Spec = serde_json::from_slice(&text).step(format!("parse {}", config.display()))?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| InitError::new("config", "linux section missing"))?;
    let nss = linux.namespaces().clone().unwrap_or_default();
    if !nss.iter().any(|n| n.typ() == LinuxNamespaceType::Mount) {
        return Err(InitError::new(
            "namespaces",
            "a mount namespace is required (the rootfs is set up in it)",
        ));
    }
    let entered = namespaces::enter(&nss)?;
    Ok((spec, bundle, entered))
}

/// Everything after the fork, up to the ready report.
fn setup(
    spec: &Spec,
    bundle: &Path,
    entered: &Entered,
) -> Result<(Process, Option<Filter>, Identity)> {
    let linux = spec.linux().clone().unwrap_or_default();
    let proc_ = spec
        .process()
        .clone()
        .ok_or_else(|| InitError::new("config", "process missing"))?;
    // cgroup: created, limited and joined before anything else runs in the container.
    let mut cgroups: CgroupSources = Vec::new();
    if let Some(path) = linux.cgroups_path() {
        let path = path.to_string_lossy();
        let cg = ContainerCgroup::locate(&path).step("cgroup")?;
        cg.create().step("cgroup")?;
        if let Some(r) = linux.resources() {
            super::cgroup::apply_resources(&path, r).step("cgroup")?;
        }
        cg.join_self().step("cgroup")?;
        cgroups = match cg.mode {
            CgroupMode::V2 => cg.dirs.iter().map(|d| (String::new(), d.clone())).collect(),
            CgroupMode::V1 => cg
                .dirs
                .iter()
                .filter_map(|d| {
                    let rel = d.strip_prefix(crate::cgroup::DEFAULT_ROOT).ok()?;
                    let name = rel.components().next()?.as_os_str().to_str()?.to_string();
                    Some((name, d.clone()))
                })
                .collect(),
        };
    }
    if entered.new.contains(&LinuxNamespaceType::Cgroup) {
        namespaces::unshare_cgroup()?;
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| InitError::new("config", "root missing"))?;
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).step(format!("rootfs {}", rootfs.display()))?;
    super::rootfs::prepare(spec, &rootfs, bundle, &cgroups)?;
    super::rootfs::pivot(&rootfs)?;
    if proc_.terminal().unwrap_or(false) {
        // In the container's own devpts, and bound onto its /dev/console.
        super::console::setup(&proc_, true)?;
    }
    // As runc: a working directory the image lacks is created (as root, 0755) before the
    // process drops to its user. A read-only rootfs makes this fail; chdir then reports it.
    if let Some(p) = spec.process().as_ref()
        && !p.cwd().exists()
    {
        let _ = std::fs::create_dir_all(p.cwd());
    }
    if entered.new.contains(&LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).step(format!("sethostname {h:?}"))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            // SAFETY: d points at d.len() valid bytes for the duration of the call.
            let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
            nix::errno::Errno::result(rc).step(format!("setdomainname {d:?}"))?;
        }
    }
    for (key, value) in linux.sysctl().iter().flatten() {
        write_sysctl(key, value)?;
    }
    super::rootfs::protect_paths(spec)?;
    if root.readonly().unwrap_or(false) {
        super::rootfs::readonly_root()?;
    }
    process::set_rlimits(&proc_)?;
    if let Some(adj) = proc_.oom_score_adj() {
        process::set_oom_score_adj(adj);
    }
    process::session(proc_.terminal().unwrap_or(false))?;
    let filter = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;
    let identity = process::set_identity(&proc_, filter.is_some())?;
    Ok((proc_, filter, identity))
}

/// net.ipv4.ip_forward=1 → /proc/sys/net/ipv4/ip_forward (of the container's namespaces).
pub(crate) fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let step = format!("sysctl {key}={value}");
    let rel = key.replace('.', "/");
    if key.is_empty() || rel.split('/').any(|c| c.is_empty() || c == "..") {
        return Err(InitError::new(step, "not a sysctl name"));
    }
    let path = Path::new("/proc/sys").join(rel);
    std::fs::write(&path, value)
        .map_err(|e| InitError::new(step, format!("{}: {e}", path.display())))
}
