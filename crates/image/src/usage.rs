//! Disk usage of the store as the kubelet's image GC wants it: bytes really allocated
//! (st_blocks * 512) and inodes, each hard-linked inode counted once, symlinks not followed.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_core::image::{FsUsage, ImageError};

pub fn fs_usage(root: &Path) -> Result<FsUsage, ImageError> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut usage = FsUsage::default();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            // Content may disappear under us (GC, a pull's temp files): skip it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && p != root => continue,
            Err(e) => return Err(ImageError::Store(format!("stat {}: {e}", p.display()))),
        };
        if seen.insert((meta.dev(), meta.ino())) {
            usage.used_bytes += meta.blocks() * 512;
            usage.inodes_used += 1;
        }
        if meta.is_dir() {
            match std::fs::read_dir(&p) {
                Ok(rd) => stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::Store(format!("listing {}: {e}", p.display()))),
            }
        }
    }
    Ok(usage)
}

/// The bytes of the regular files under `dir` (each hard-linked inode once, symlinks not
/// followed): a layer's size as `docker history` reports it.
pub fn content_bytes(dir: &Path) -> Result<u64, ImageError> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)
            .map_err(|e| ImageError::Store(format!("stat {}: {e}", p.display())))?;
        if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
            total += meta.len();
        } else if meta.is_dir() {
            let rd = std::fs::read_dir(&p)
                .map_err(|e| ImageError::Store(format!("listing {}: {e}", p.display())))?;
            stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_bytes_counts_file_lengths_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        assert_eq!(content_bytes(r).unwrap(), 0);
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d/a"), vec![1u8; 1000]).unwrap();
        std::fs::hard_link(r.join("d/a"), r.join("b")).unwrap();
        std::fs::write(r.join("c"), b"xyz").unwrap();
        std::os::unix::fs::symlink("/usr", r.join("l")).unwrap();
        assert_eq!(content_bytes(r).unwrap(), 1003);
    }

    #[test]
    fn counts_blocks_inodes_and_hardlinks_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let empty = fs_usage(r).unwrap();
        assert_eq!(empty.inodes_used, 1);
        std::fs::write(r.join("a"), vec![7u8; 100_000]).unwrap();
        std::fs::hard_link(r.join("a"), r.join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", r.join("l")).unwrap();
        std::fs::create_dir(r.join("d")).unwrap();
        let u = fs_usage(r).unwrap();
        // root, a (=b), l, d
        assert_eq!(u.inodes_used, 4);
        assert!(u.used_bytes >= 100_000, "{u:?}");
        assert!(
            u.used_bytes < 100_000 + 4 * 65536,
            "symlink must not be followed: {u:?}"
        );
    }
}
