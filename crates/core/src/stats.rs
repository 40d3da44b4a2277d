//! Resource usage figures of pods and containers, and the port that reads them from the
//! node. The figures are plain numbers; the CRI layer turns them into CRI messages and
//! computes rates between samples.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct StatsError {
    pub what: String,
    pub message: String,
}

impl StatsError {
    pub fn new(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// What one cgroup has used so far. A figure the node does not offer (controller not
/// mounted, file missing) is None.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    pub memory: Option<MemoryUsage>,
    /// Processes (and threads) in the cgroup: pids.current.
    pub pids: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// v2 memory.current, v1 memory.usage_in_bytes.
    pub usage_bytes: u64,
    /// The kubelet's working set: usage minus inactive file pages (never below 0).
    pub working_set_bytes: u64,
    /// Anonymous memory (v2 `anon`, v1 `total_rss`).
    pub rss_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// The memory limit, None when unlimited.
    pub limit_bytes: Option<u64>,
}

impl MemoryUsage {
    /// limit - working set when limited (the kubelet's `available_bytes`).
    pub fn available_bytes(&self) -> Option<u64> {
        self.limit_bytes
            .map(|l| l.saturating_sub(self.working_set_bytes))
    }
}

/// Bytes and inodes under a directory tree (the writable layer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirUsage {
    pub used_bytes: u64,
    pub inodes_used: u64,
}

/// Counters of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceUsage {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// Reads usage from the node. Each call does blocking I/O: callers run it off the async
/// executor (one blocking task per container, so many containers are read side by side).
pub trait StatsReader: Send + Sync {
    /// The cgroup at `cgroups_path`, as the OCI spec's `linux.cgroupsPath` names it.
    fn cgroup(&self, cgroups_path: &str) -> Result<CgroupUsage, StatsError>;
    /// Bytes and inodes below `dir` (not following symlinks or crossing mounts).
    fn dir_usage(&self, dir: &Path) -> Result<DirUsage, StatsError>;
    /// Interfaces of the network namespace pinned at `netns` (loopback left out).
    fn network(&self, netns: &Path) -> Result<Vec<InterfaceUsage>, StatsError>;
    /// The processes in the cgroup at `cgroups_path` (host pids), for `docker top`.
    fn cgroup_pids(&self, cgroups_path: &str) -> Result<Vec<i32>, StatsError> {
        Err(StatsError::new(
            format!("cgroup {cgroups_path}"),
            "this reader cannot list processes",
        ))
    }
    /// The node's cumulative CPU time of all CPUs, nanoseconds, and the number of CPUs
    /// online (what `docker stats` divides a container's CPU time by).
    fn node_cpu(&self) -> Result<(u64, u32), StatsError> {
        Err(StatsError::new(
            "node cpu",
            "this reader cannot read the node's CPU time",
        ))
    }
}

/// usage_nano_cores between two samples `(timestamp ns, cumulative cpu ns)`; None when
/// the samples do not move forward in time.
pub fn nano_cores(prev: (i64, u64), now: (i64, u64)) -> Option<u64> {
    let dt = now.0.checked_sub(prev.0).filter(|d| *d > 0)? as u128;
    let du = now.1.saturating_sub(prev.1) as u128;
    u64::try_from(du * 1_000_000_000 / dt).ok()
}

/// Where a container's writable layer lives in its bundle.
pub fn writable_layer(bundle: &Path) -> PathBuf {
    bundle.join("upper")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(nano_cores((0, 50), (1_000_000_000, 500)), Some(450));
        assert_eq!(
            nano_cores((0, 0), (500_000_000, 500_000_000)),
            Some(1_000_000_000)
        );
        assert_eq!(nano_cores((10, 0), (10, 5)), None);
        assert_eq!(nano_cores((10, 9), (20, 5)), Some(0));
    }

    #[test]
    fn available() {
        let m = MemoryUsage {
            working_set_bytes: 30,
            limit_bytes: Some(100),
            ..Default::default()
        };
        assert_eq!(m.available_bytes(), Some(70));
        let m = MemoryUsage {
            working_set_bytes: 300,
            limit_bytes: Some(100),
            ..Default::default()
        };
        assert_eq!(m.available_bytes(), Some(0));
        assert_eq!(MemoryUsage::default().available_bytes(), None);
    }
}
