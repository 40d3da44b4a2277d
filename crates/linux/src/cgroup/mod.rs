//! Pod cgroups on cgroupfs, v1 (every mounted hierarchy) and v2 (unified). Where a pod's
//! cgroup goes is decided by `berth_core::pod::cgroup`; this only makes and deletes dirs.
//!
//! The work is a handful of mkdir/rmdir calls done by hand rather than through cgroups-rs,
//! so that errors keep their errno (EBUSY: processes still inside) and the cgroup root is
//! configurable; cgroups-rs only answers which mode the node runs.

pub mod freezer;
mod v1;

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use berth_core::pod::ports::{Cgroups, PodError};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

/// The standard cgroup mount root.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Default pod parents (empty `cgroup_parent`), removed once their last pod is gone.
const DEFAULT_PARENTS: [&str; 2] = ["berth", "berth.slice"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Legacy or hybrid: one hierarchy per controller (cgroup2, if mounted too, has none).
    V1,
    /// Unified: /sys/fs/cgroup is cgroup2.
    V2,
}

/// The node's cgroup mode, from the filesystem at /sys/fs/cgroup.
pub fn mode() -> CgroupMode {
    if cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode() {
        CgroupMode::V2
    } else {
        CgroupMode::V1
    }
}

/// The real [`Cgroups`] port.
#[derive(Debug, Clone)]
pub struct LinuxCgroups {
    mode: CgroupMode,
    /// Directories pod paths are made in: the root itself (v2), or each hierarchy's mount
    /// point below the root (v1).
    bases: Vec<Base>,
}

#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub dir: PathBuf,
    /// v1 cpuset: new cgroups need cpuset.cpus/mems copied from their parent.
    pub cpuset: bool,
}

impl LinuxCgroups {
    /// Detects the mode of the cgroup filesystem at `root` (normally [`DEFAULT_ROOT`]) and,
    /// for v1, the hierarchies mounted below it.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, PodError> {
        let root = root.into();
        let step = "detect cgroups";
        let fs = statfs(&root)
            .map_err(|e| PodError::failed(step, format!("{}: {e}", root.display())))?;
        if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
            return Ok(Self {
                mode: CgroupMode::V2,
                bases: vec![Base {
                    dir: root,
                    cpuset: false,
                }],
            });
        }
        let bases = v1::hierarchies(&root).map_err(|e| PodError::failed(step, e))?;
        if bases.is_empty() {
            return Err(PodError::failed(
                step,
                format!("no cgroup hierarchy is mounted below {}", root.display()),
            ));
        }
        Ok(Self {
            mode: CgroupMode::V1,
            bases,
        })
    }

    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// Where `path` lives in every hierarchy (one dir on v2).
    pub fn dirs(&self, path: &str) -> Result<Vec<PathBuf>, PodError> {
        let rel = relative(path)?;
        Ok(self.bases.iter().map(|b| b.dir.join(&rel)).collect())
    }

    fn create_blocking(&self, path: &str) -> Result<(), PodError> {
        let rel = relative(path)?;
        let mut created: Vec<PathBuf> = Vec::new();
        let result = self.bases.iter().try_for_each(|base| match self.mode {
            CgroupMode::V1 => v1::create(base, &rel, &mut created),
            CgroupMode::V2 => create_v2(&base.dir, &rel, &mut created),
        });
        if let Err(e) = result {
            // Undo, deepest first.
            for dir in created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
        Ok(())
    }

    fn remove_blocking(&self, path: &str) -> Result<(), PodError> {
        let rel = relative(path)?;
        for base in &self.bases {
            remove_tree(&base.dir.join(&rel))?;
        }
        // Nothing named berth stays behind once the last pod under the default parent goes.
        if let Some(parent) = rel.parent()
            && DEFAULT_PARENTS.iter().any(|p| Path::new(p) == parent)
        {
            for base in &self.bases {
                match std::fs::remove_dir(base.dir.join(parent)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EBUSY) | Some(libc::ENOTEMPTY)
                        ) => {}
                    Err(e) => tracing::debug!(error = %e, "removing the default pod cgroup parent"),
                }
            }
        }
        Ok(())
    }
}

/// `path` as a relative path that stays below the cgroup root.
fn relative(path: &str) -> Result<PathBuf, PodError> {
    let p = Path::new(path.trim_start_matches('/'));
    let ok = !path.trim_matches('/').is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(PodError::InvalidArgument(format!(
            "cgroup path {path:?} is not a path below the cgroup root"
        )));
    }
    Ok(p.to_path_buf())
}

fn mkdir_levels(
    base: &Path,
    rel: &Path,
    created: &mut Vec<PathBuf>,
    mut before_level: impl FnMut(&Path) -> Result<(), PodError>,
    mut after_create: impl FnMut(&Path) -> Result<(), PodError>,
) -> Result<(), PodError> {
    let mut dir = base.to_path_buf();
    for comp in rel.components() {
        before_level(&dir)?;
        dir.push(comp);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                created.push(dir.clone());
                after_create(&dir)?;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(PodError::failed(
                    "create pod cgroup",
                    format!("{}: {e}", dir.display()),
                ));
            }
        }
    }
    Ok(())
}

/// v2: every level gets the controllers its parent has enabled for it.
fn create_v2(root: &Path, rel: &Path, created: &mut Vec<PathBuf>) -> Result<(), PodError> {
    mkdir_levels(root, rel, created, enable_controllers, |_| Ok(()))
}

/// Enables in `dir`'s subtree_control every controller `dir` has and has not enabled yet.
/// A controller that cannot be enabled (processes in an inner cgroup...) is skipped:
/// the pod then simply has no limits of that kind.
fn enable_controllers(dir: &Path) -> Result<(), PodError> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let have = read("cgroup.controllers");
    let enabled = read("cgroup.subtree_control");
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    for c in have.split_whitespace().filter(|c| !enabled.contains(c)) {
        if let Err(e) = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}")) {
            tracing::debug!(dir = %dir.display(), controller = c, error = %e, "cannot enable cgroup controller");
        }
    }
    Ok(())
}

/// Removes `dir` and the (process-free) cgroups below it, deepest first.
fn remove_tree(dir: &Path) -> Result<(), PodError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(PodError::failed(
                "remove pod cgroup",
                format!("{}: {e}", dir.display()),
            ));
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(PodError::failed(
            "remove pod cgroup",
            format!("{}: processes are still inside (EBUSY)", dir.display()),
        )),
        Err(e) => Err(PodError::failed(
            "remove pod cgroup",
            format!("{}: {e}", dir.display()),
        )),
    }
}

#[async_trait]
impl Cgroups for LinuxCgroups {
    async fn create_pod(&self, path: &str) -> Result<(), PodError> {
        let me = self.clone();
        let path = path.to_string();
        tokio::task::spawn_blocking(move || me.create_blocking(&path))
            .await
            .map_err(|e| PodError::failed("create pod cgroup", e))?
    }

    async fn remove_pod(&self, path: &str) -> Result<(), PodError> {
        let me = self.clone();
        let path = path.to_string();
        tokio::task::spawn_blocking(move || me.remove_blocking(&path))
            .await
            .map_err(|e| PodError::failed("remove pod cgroup", e))?
    }

    async fn add_process(&self, path: &str, pid: i32) -> Result<(), PodError> {
        let dirs = self.dirs(path)?;
        tokio::task::spawn_blocking(move || {
            for dir in dirs {
                let procs = dir.join("cgroup.procs");
                std::fs::write(&procs, pid.to_string()).map_err(|e| {
                    PodError::failed(
                        "join pod cgroup",
                        format!("pid {pid} → {}: {e}", procs.display()),
                    )
                })?;
            }
            Ok(())
        })
        .await
        .map_err(|e| PodError::failed("join pod cgroup", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative("berth/berth-1").unwrap(),
            PathBuf::from("berth/berth-1")
        );
        assert_eq!(relative("/a/b").unwrap(), PathBuf::from("a/b"));
        assert!(relative("").is_err());
        assert!(relative("/").is_err());
        assert!(relative("a/../../etc").is_err());
    }
}
