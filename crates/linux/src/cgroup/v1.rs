//! cgroup v1: the hierarchies mounted below the cgroup root, and cpuset's quirk.

use std::path::{Path, PathBuf};

use berth_core::pod::ports::PodError;

use super::{Base, mkdir_levels};
use crate::ns::mountinfo;

/// Every cgroup mount below `root`: the v1 controller hierarchies, named ones
/// (name=systemd) and, on hybrid nodes, the controller-less cgroup2 (runc makes the
/// container's path there too, so removal has to look there).
pub(crate) fn hierarchies(root: &Path) -> std::io::Result<Vec<Base>> {
    let root = mountinfo::canonical(root);
    let mut bases: Vec<Base> = Vec::new();
    for m in mountinfo::mounts()? {
        let v1 = m.fs_type == "cgroup";
        if !(v1 || m.fs_type == "cgroup2") || m.mount_point.parent() != Some(root.as_path()) {
            continue;
        }
        if bases.iter().any(|b| b.dir == m.mount_point) {
            continue;
        }
        let cpuset = v1 && m.mount_point.join("cpuset.cpus").exists();
        bases.push(Base {
            dir: m.mount_point,
            cpuset,
        });
    }
    Ok(bases)
}

/// Makes `rel` below `base`. A new cpuset cgroup starts with no CPUs and no memory nodes
/// (no task could join it), so it gets its parent's.
pub(crate) fn create(base: &Base, rel: &Path, created: &mut Vec<PathBuf>) -> Result<(), PodError> {
    mkdir_levels(
        &base.dir,
        rel,
        created,
        |_| Ok(()),
        |dir| {
            if base.cpuset {
                copy_from_parent(dir, "cpuset.cpus")?;
                copy_from_parent(dir, "cpuset.mems")?;
            }
            Ok(())
        },
    )
}

fn copy_from_parent(dir: &Path, file: &str) -> Result<(), PodError> {
    let step = "create pod cgroup";
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let mine = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    if !mine.trim().is_empty() {
        return Ok(());
    }
    let value = std::fs::read_to_string(parent.join(file))
        .map_err(|e| PodError::failed(step, format!("{}: {e}", parent.join(file).display())))?;
    std::fs::write(dir.join(file), value.trim())
        .map_err(|e| PodError::failed(step, format!("{}: {e}", dir.join(file).display())))
}
