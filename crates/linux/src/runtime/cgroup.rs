//! Container cgroups: created at `linux.cgroupsPath` (relative to the cgroup root) in every
//! v1 hierarchy or in the unified v2 tree, limited per `linux.resources`, then joined by
//! the container process before it execs. The pod-level code (`crate::cgroup`) decides the
//! node's mode and where the hierarchies are; this reuses its [`LinuxCgroups::dirs`].

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::runtime::RuntimeError;
use oci_spec::runtime::LinuxResources;

use super::resources;
use crate::cgroup::{CgroupMode, DEFAULT_ROOT, LinuxCgroups};

/// The node's cgroups and the container's dirs in them.
pub(crate) struct ContainerCgroup {
    pub mode: CgroupMode,
    pub dirs: Vec<PathBuf>,
}

impl ContainerCgroup {
    pub fn locate(cgroups_path: &str) -> Result<Self, RuntimeError> {
        let cg = LinuxCgroups::new(DEFAULT_ROOT)
            .map_err(|e| RuntimeError::failed("cgroup", format!("{DEFAULT_ROOT}: {e}")))?;
        let dirs = cg
            .dirs(cgroups_path)
            .map_err(|e| RuntimeError::failed("cgroup", e))?;
        Ok(Self {
            mode: cg.mode(),
            dirs,
        })
    }

    /// The dir of one v1 controller's hierarchy (or the v2 dir).
    pub fn controller_dir(&self, controller: &str) -> Option<&Path> {
        match self.mode {
            CgroupMode::V2 => self.dirs.first().map(PathBuf::as_path),
            CgroupMode::V1 => self
                .dirs
                .iter()
                .find(|d| mount_of(d).is_some_and(|m| has_controller(&m, controller)))
                .map(PathBuf::as_path),
        }
    }

    /// mkdir -p in every hierarchy; v1 cpuset levels get their parent's cpus/mems, v2
    /// levels get every controller their parent offers.
    pub fn create(&self) -> Result<(), RuntimeError> {
        for dir in &self.dirs {
            let mut missing = Vec::new();
            let mut d = dir.as_path();
            while !d.exists() {
                missing.push(d.to_path_buf());
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
            for level in missing.iter().rev() {
                if self.mode == CgroupMode::V2
                    && let Some(parent) = level.parent()
                {
                    enable_controllers(parent);
                }
                match std::fs::create_dir(level) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(RuntimeError::failed(
                            "create cgroup",
                            format!("{}: {e}", level.display()),
                        ));
                    }
                }
                copy_cpuset(level)?;
            }
            if self.mode == CgroupMode::V2 {
                enable_controllers_for_leaf(dir);
            }
        }
        Ok(())
    }

    /// Moves the calling process into the cgroup in every hierarchy.
    pub fn join_self(&self) -> Result<(), RuntimeError> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, "0").map_err(|e| {
                RuntimeError::failed("join cgroup", format!("{}: {e}", procs.display()))
            })?;
        }
        Ok(())
    }
}

/// On v2 the leaf itself enables nothing (it would then be an inner node), but its parent
/// must have delegated the controllers to it: already done level by level in `create`.
fn enable_controllers_for_leaf(dir: &Path) {
    if let Some(parent) = dir.parent() {
        enable_controllers(parent);
    }
}

/// Enables in `dir`'s subtree_control every controller `dir` has; failures (processes in
/// `dir`, controller busy) leave the container without that kind of limit, as the pod
/// cgroup code does.
fn enable_controllers(dir: &Path) {
    let have = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let on = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let on: Vec<&str> = on.split_whitespace().collect();
    for c in have.split_whitespace().filter(|c| !on.contains(c)) {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
    }
}

/// v1 cpuset: a new cgroup has no CPUs or memory nodes until given its parent's.
fn copy_cpuset(dir: &Path) -> Result<(), RuntimeError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let path = dir.join(file);
        let Ok(mine) = std::fs::read_to_string(&path) else {
            continue; // not a v1 cpuset hierarchy
        };
        if !mine.trim().is_empty() || dir.join("cgroup.controllers").exists() {
            continue;
        }
        let Some(parent) = dir.parent() else { continue };
        let value = std::fs::read_to_string(parent.join(file)).unwrap_or_default();
        std::fs::write(&path, value.trim()).map_err(|e| {
            RuntimeError::failed("create cgroup", format!("{}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// The mount point's controllers: the v1 hierarchies are mounted one per controller (or
/// co-mounted, like `cpu,cpuacct`), named after them.
fn mount_of(dir: &Path) -> Option<String> {
    let rel = dir.strip_prefix(DEFAULT_ROOT).ok()?;
    rel.components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
}

fn has_controller(mount_name: &str, controller: &str) -> bool {
    mount_name.split(',').any(|c| c == controller)
}

/// Applies `resources` to the container's existing cgroup (created by the init). Used at
/// creation and live by UpdateContainerResources.
pub fn apply_resources(cgroups_path: &str, resources: &LinuxResources) -> Result<(), RuntimeError> {
    let cg = ContainerCgroup::locate(cgroups_path)?;
    match cg.mode {
        CgroupMode::V1 => resources::apply_v1(&cg, resources),
        CgroupMode::V2 => resources::apply_v2(&cg, resources),
    }
}

/// Removes the container's cgroup in every hierarchy. Idempotent; waits up to 2 s for
/// exiting processes to leave (EBUSY), then fails naming the dir.
pub fn remove_cgroup(cgroups_path: &str) -> Result<(), RuntimeError> {
    let cg = ContainerCgroup::locate(cgroups_path)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    for dir in &cg.dirs {
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(RuntimeError::failed(
                        "remove cgroup",
                        format!("{}: {e}", dir.display()),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// How many times the kernel's OOM killer killed a process of the container's cgroup:
/// v2 `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`. None if unknown.
pub fn oom_kill_count(cgroups_path: &str) -> Option<u64> {
    let cg = ContainerCgroup::locate(cgroups_path).ok()?;
    let dir = cg.controller_dir("memory")?;
    let file = match cg.mode {
        CgroupMode::V2 => "memory.events",
        CgroupMode::V1 => "memory.oom_control",
    };
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    parse_oom_kill(&text)
}

fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "oom_kill").then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_lines() {
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"),
            Some(4)
        );
        assert_eq!(parse_oom_kill("oom 1\n"), None);
    }

    #[test]
    fn controllers_of_mounts() {
        assert!(has_controller("cpu,cpuacct", "cpuacct"));
        assert!(!has_controller("cpuset", "cpu"));
        assert_eq!(
            mount_of(Path::new("/sys/fs/cgroup/memory/a/b")).as_deref(),
            Some("memory")
        );
    }
}
