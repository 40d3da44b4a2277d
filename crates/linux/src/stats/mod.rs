//! The real [`StatsReader`]: cgroup files, the writable layer's disk use, and interface
//! counters read inside the pod's network namespace.

mod cgroup;
mod cpu;
mod dir;
mod net;

use std::path::{Path, PathBuf};

use berth_core::pod::ports::PodError;
use berth_core::stats::{CgroupUsage, DirUsage, InterfaceUsage, StatsError, StatsReader};

use crate::cgroup::{CgroupMode, LinuxCgroups};

pub struct LinuxStats {
    cgroups: LinuxCgroups,
}

impl LinuxStats {
    /// Reads cgroups below `root` (normally [`crate::cgroup::DEFAULT_ROOT`]); the
    /// hierarchies are found once, here.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, PodError> {
        Ok(Self {
            cgroups: LinuxCgroups::new(root)?,
        })
    }
}

impl StatsReader for LinuxStats {
    fn cgroup(&self, cgroups_path: &str) -> Result<CgroupUsage, StatsError> {
        let dirs = self
            .cgroups
            .dirs(cgroups_path)
            .map_err(|e| StatsError::new(format!("cgroup {cgroups_path}"), e))?;
        let mode = self.cgroups.mode();
        Ok(cgroup::read(mode, |controller| match mode {
            CgroupMode::V2 => dirs.first().cloned(),
            // v1 hierarchies are mounted at <root>/<controllers>, e.g. cpu,cpuacct.
            CgroupMode::V1 => dirs
                .iter()
                .find(|d| hierarchy_has(d, cgroups_path, controller))
                .cloned(),
        }))
    }

    fn dir_usage(&self, dir: &Path) -> Result<DirUsage, StatsError> {
        dir::usage(dir)
    }

    fn network(&self, netns: &Path) -> Result<Vec<InterfaceUsage>, StatsError> {
        net::read(netns)
    }

    fn cgroup_pids(&self, cgroups_path: &str) -> Result<Vec<i32>, StatsError> {
        let what = || format!("cgroup {cgroups_path}");
        let dirs = self
            .cgroups
            .dirs(cgroups_path)
            .map_err(|e| StatsError::new(what(), e))?;
        // Every hierarchy holds every process; the first that answers will do (v1 ones
        // without the container's directory are skipped).
        for dir in &dirs {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                return Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect());
            }
        }
        Err(StatsError::new(what(), "no hierarchy lists its processes"))
    }

    fn node_cpu(&self) -> Result<(u64, u32), StatsError> {
        let text =
            std::fs::read_to_string("/proc/stat").map_err(|e| StatsError::new("/proc/stat", e))?;
        cpu::node_cpu(&text).ok_or_else(|| StatsError::new("/proc/stat", "no cpu lines"))
    }
}

/// Whether `dir` (`<mount>/<cgroups_path>`) lies in the hierarchy of `controller`.
fn hierarchy_has(dir: &Path, cgroups_path: &str, controller: &str) -> bool {
    let depth = Path::new(cgroups_path.trim_matches('/'))
        .components()
        .count();
    let mut mount = dir;
    for _ in 0..depth {
        match mount.parent() {
            Some(p) => mount = p,
            None => return false,
        }
    }
    mount
        .file_name()
        .is_some_and(|n| n.to_string_lossy().split(',').any(|c| c == controller))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_by_controller() {
        let d = Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/berth-1/abc");
        assert!(hierarchy_has(d, "/berth/berth-1/abc", "cpuacct"));
        assert!(!hierarchy_has(d, "/berth/berth-1/abc", "memory"));
        let d = Path::new("/sys/fs/cgroup/memory/berth/x");
        assert!(hierarchy_has(d, "berth/x", "memory"));
    }
}
