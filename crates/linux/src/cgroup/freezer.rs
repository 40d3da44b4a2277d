//! Freezing a container's cgroup (`docker pause`): v1 writes `FROZEN`/`THAWED` to
//! `freezer.state` in the freezer hierarchy, v2 writes 1/0 to `cgroup.freeze`. Freezing is
//! asynchronous in the kernel (v1 passes through FREEZING, v2 reports `frozen 1` in
//! `cgroup.events` once every task stopped), so both wait until the state is reached and
//! undo a freeze that does not complete, as runc does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CgroupMode, LinuxCgroups};

/// How long a freeze may take to reach every task.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("cgroup {path}: no freezer (is the freezer controller mounted?)")]
    NoFreezer { path: String },
    #[error("{file}: {error}")]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: the cgroup did not freeze within {}s (a task may be stuck in the kernel); thawed again", FREEZE_TIMEOUT.as_secs())]
    Timeout { file: PathBuf },
    #[error("cgroup path {path}: {message}")]
    Path { path: String, message: String },
}

/// The freezer of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// The cgroup's dir in the v1 freezer hierarchy.
    V1(PathBuf),
    /// The cgroup's v2 dir.
    V2(PathBuf),
}

impl Freezer {
    /// The freezer of `cgroups_path` (relative to the root `cgroups` was made for).
    pub fn locate(cgroups: &LinuxCgroups, cgroups_path: &str) -> Result<Self, FreezeError> {
        let dirs = cgroups.dirs(cgroups_path).map_err(|e| FreezeError::Path {
            path: cgroups_path.to_string(),
            message: e.to_string(),
        })?;
        let found = match cgroups.mode() {
            CgroupMode::V2 => dirs
                .into_iter()
                .find(|d| d.join("cgroup.freeze").exists())
                .map(Freezer::V2),
            CgroupMode::V1 => dirs
                .into_iter()
                .find(|d| d.join("freezer.state").exists())
                .map(Freezer::V1),
        };
        found.ok_or_else(|| FreezeError::NoFreezer {
            path: cgroups_path.to_string(),
        })
    }

    /// Freezes every task and waits until the kernel says they all are.
    pub fn freeze(&self) -> Result<(), FreezeError> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        loop {
            // v1 may drop back to THAWED when a task forks meanwhile: write again.
            self.write(true)?;
            if self.is_frozen()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.write(false);
                return Err(FreezeError::Timeout {
                    file: self.control_file(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Thaws every task (fine when not frozen).
    pub fn thaw(&self) -> Result<(), FreezeError> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        loop {
            self.write(false)?;
            if !self.is_frozen()? || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether every task is frozen (v1 FREEZING counts as not yet).
    pub fn is_frozen(&self) -> Result<bool, FreezeError> {
        match self {
            Freezer::V1(dir) => {
                let state = read(&dir.join("freezer.state"))?;
                Ok(state.trim() == "FROZEN")
            }
            Freezer::V2(dir) => {
                let events = read(&dir.join("cgroup.events"))?;
                Ok(events.lines().any(|l| l.trim() == "frozen 1"))
            }
        }
    }

    fn control_file(&self) -> PathBuf {
        match self {
            Freezer::V1(dir) => dir.join("freezer.state"),
            Freezer::V2(dir) => dir.join("cgroup.freeze"),
        }
    }

    fn write(&self, frozen: bool) -> Result<(), FreezeError> {
        let value = match (self, frozen) {
            (Freezer::V1(_), true) => "FROZEN",
            (Freezer::V1(_), false) => "THAWED",
            (Freezer::V2(_), true) => "1",
            (Freezer::V2(_), false) => "0",
        };
        let file = self.control_file();
        std::fs::write(&file, value).map_err(|error| FreezeError::Io { file, error })
    }
}

fn read(file: &Path) -> Result<String, FreezeError> {
    std::fs::read_to_string(file).map_err(|error| FreezeError::Io {
        file: file.to_path_buf(),
        error,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// v2's files in a plain dir, with a "kernel" thread that reports the freeze state
    /// written (the host runs v1; the real v2 freezer is exercised in the VM lane).
    #[test]
    fn v2_writes_cgroup_freeze_and_waits_for_frozen() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        std::fs::write(d.join("cgroup.freeze"), "0").unwrap();
        std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let kernel = {
            let (d, stop) = (d.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let f = std::fs::read_to_string(d.join("cgroup.freeze")).unwrap();
                    let events = format!("populated 1\nfrozen {}\n", f.trim());
                    std::fs::write(d.join("cgroup.events.tmp"), events).unwrap();
                    std::fs::rename(d.join("cgroup.events.tmp"), d.join("cgroup.events")).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let f = Freezer::V2(d.clone());
        f.freeze().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cgroup.freeze")).unwrap(),
            "1"
        );
        assert!(f.is_frozen().unwrap());
        f.thaw().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cgroup.freeze")).unwrap(),
            "0"
        );
        assert!(!f.is_frozen().unwrap());
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        kernel.join().unwrap();
    }

    #[test]
    fn a_missing_control_file_is_named() {
        let f = Freezer::V1(PathBuf::from("/nonexistent/berth"));
        let e = f.freeze().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/berth/freezer.state"), "{e}");
    }
}
