//! Disk use of a directory tree, as `du` counts it: allocated blocks, one inode per entry
//! (hard links once), without crossing into other filesystems.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_core::stats::{DirUsage, StatsError};

pub fn usage(dir: &Path) -> Result<DirUsage, StatsError> {
    let what = || format!("directory {}", dir.display());
    let root = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        // Not made yet (or already removed): nothing written.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(DirUsage::default()),
        Err(e) => return Err(StatsError::new(what(), e)),
    };
    let mut seen = HashSet::new();
    let mut out = DirUsage::default();
    add(&root, &mut seen, &mut out);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // Entries may vanish while the container runs: skip what cannot be read.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != root.dev() {
                continue;
            }
            add(&m, &mut seen, &mut out);
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(out)
}

fn add(m: &std::fs::Metadata, seen: &mut HashSet<u64>, out: &mut DirUsage) {
    if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
        return;
    }
    out.inodes_used += 1;
    out.used_bytes += m.blocks() * 512;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_and_dirs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), vec![1u8; 100_000]).unwrap();
        std::fs::hard_link(d.path().join("sub/f"), d.path().join("link")).unwrap();
        let u = usage(d.path()).unwrap();
        assert_eq!(u.inodes_used, 3, "root, sub, f (linked once)");
        assert!(u.used_bytes >= 100_000, "{u:?}");
        assert_eq!(usage(&d.path().join("gone")).unwrap(), DirUsage::default());
    }
}
