//! Facts about the node and the image's files that spec generation needs. Read-only look-ups,
//! kept here so the spec code in core stays pure.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use berth_core::container::{DeviceKind, DeviceNode};

/// A file of the image, read without following symlinks out of the rootfs: every component
/// must be a plain directory and the file a regular file; anything else counts as absent.
pub fn image_file(rootfs: &Path, rel: &str) -> Option<String> {
    let mut p = rootfs.to_path_buf();
    let parts: Vec<Component<'_>> = Path::new(rel).components().collect();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else { continue };
        p.push(name);
        let meta = fs::symlink_metadata(&p).ok()?;
        let last = i + 1 == parts.len();
        if (last && !meta.is_file()) || (!last && !meta.is_dir()) {
            return None;
        }
    }
    fs::read_to_string(&p).ok()
}

fn major(dev: u64) -> i64 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as i64
}

fn minor(dev: u64) -> i64 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as i64
}

fn node(path: &Path, meta: &fs::Metadata) -> Option<DeviceNode> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        DeviceKind::Char
    } else if ft.is_block_device() {
        DeviceKind::Block
    } else {
        return None;
    };
    Some(DeviceNode {
        path: path.to_path_buf(),
        kind,
        major: major(meta.rdev()),
        minor: minor(meta.rdev()),
        file_mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Device nodes for a CRI device's host path: the node itself, or every node below a
/// directory (as containerd does). Follows a symlinked host path once, like `stat`.
pub fn device_nodes(host_path: &str) -> Vec<DeviceNode> {
    let p = PathBuf::from(host_path);
    match fs::metadata(&p) {
        Ok(m) if m.is_dir() => walk(&p),
        Ok(m) => node(&p, &m).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

/// Every device node under `dir` (not following symlinks).
pub fn walk(dir: &Path) -> Vec<DeviceNode> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                // /dev/pts and /dev/shm are the container's own.
                if !(path.ends_with("pts") || path.ends_with("shm")) {
                    stack.push(path);
                }
            } else if let Some(n) = node(&path, &meta) {
                out.push(n);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

pub fn node_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The capability bounding set berthd runs with (`CapBnd` of /proc/self/status): what
/// `ALL` and privileged containers get, so there is nothing to leave out at start-up.
/// None when unreadable.
pub fn bounding_caps() -> Option<Vec<berth_core::container::security::Capability>> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(berth_core::container::security::caps_from_mask(mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers() {
        // /dev/null is 1:3 everywhere.
        let n = device_nodes("/dev/null");
        assert_eq!((n[0].major, n[0].minor), (1, 3));
        assert!(device_nodes("/nonexistent").is_empty());
    }

    #[test]
    fn bounding_set_is_read() {
        let caps = bounding_caps().expect("CapBnd");
        assert!(caps.contains(&berth_core::container::security::Capability::Chown));
    }

    #[test]
    fn image_files_do_not_escape() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        assert!(
            image_file(d.path(), "/etc/passwd")
                .unwrap()
                .starts_with("root")
        );
        fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        assert_eq!(image_file(d.path(), "/etc/passwd"), None);
    }
}
