//! A container path → the node path that holds it: the mount that covers it (the longest
//! destination prefix), else the root filesystem; symlinks resolved scoped to whichever of
//! the two holds them (`secure_join`), so no path leads out of the container's files.

use std::path::{Component, Path, PathBuf};

use berth_core::files::{FilesError, FsView};

use crate::runtime::secure_join;

/// Where a container path lives on the node, and whether it is read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub host: PathBuf,
    pub read_only: bool,
}

/// `path` made absolute and lexically clean (`..` stops at `/`).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// The covering mount of a clean container path: (its node source, the rest, read-only).
fn mount_of<'a>(view: &'a FsView, path: &str) -> Option<(&'a Path, String, bool)> {
    view.mounts
        .iter()
        .filter_map(|(dst, src, ro)| {
            let dst = clean(dst);
            let rest = if dst == "/" {
                Some(path)
            } else if path == dst {
                Some("")
            } else {
                path.strip_prefix(&format!("{dst}/"))
            }?;
            Some((dst.len(), (src.as_path(), rest.to_string(), *ro)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, m)| m)
}

/// Resolves `path`'s directories and, with `follow_last`, its last component too.
pub fn resolve(view: &FsView, path: &str, follow_last: bool) -> Result<Resolved, FilesError> {
    let path = clean(path);
    let (parent, last) = match path.rsplit_once('/') {
        _ if follow_last || path == "/" => (path.as_str(), ""),
        Some((p, l)) => (if p.is_empty() { "/" } else { p }, l),
        None => (path.as_str(), ""),
    };
    let failed =
        |e: crate::runtime::InitError| FilesError::Failed(format!("resolving {path}: {e}"));
    let (mut host, mut read_only) = match mount_of(view, parent) {
        Some((src, rest, ro)) => (secure_join(src, Path::new(&rest)).map_err(failed)?, ro),
        None => {
            let inside = secure_join(&view.rootfs, Path::new(parent)).map_err(failed)?;
            // A symlink in the rootfs may lead into a mount's destination.
            let ctr = inside
                .strip_prefix(&view.rootfs)
                .map(|p| clean(&p.to_string_lossy()))
                .unwrap_or_else(|_| "/".into());
            match mount_of(view, &ctr) {
                Some((src, rest, ro)) => (secure_join(src, Path::new(&rest)).map_err(failed)?, ro),
                None => (inside, false),
            }
        }
    };
    if !last.is_empty() {
        // The last component itself may be a mount's destination (a file bind mount).
        let full = format!("{}/{last}", parent.trim_end_matches('/'));
        if let Some((src, rest, ro)) = mount_of(view, &full)
            && rest.is_empty()
        {
            host = src.to_path_buf();
            read_only = ro;
        } else {
            host.push(last);
        }
    }
    Ok(Resolved { host, read_only })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean("a/b/../c"), "/a/c");
        assert_eq!(clean("/../../etc"), "/etc");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("/x/./y/"), "/x/y");
    }

    #[test]
    fn mounts_and_symlinks_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        let rootfs = root.path().to_path_buf();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(rootfs.join("data")).unwrap();
        // An absolute symlink that would leave the rootfs if followed on the node.
        std::os::unix::fs::symlink("/etc", rootfs.join("link")).unwrap();
        std::os::unix::fs::symlink("/data/sub", rootfs.join("tovol")).unwrap();
        let view = FsView {
            rootfs: rootfs.clone(),
            mounts: vec![("/data".into(), vol.path().to_path_buf(), true)],
        };
        let r = resolve(&view, "/link/passwd", true).unwrap();
        assert_eq!(r.host, rootfs.join("etc/passwd"));
        let r = resolve(&view, "/data/x", false).unwrap();
        assert_eq!(r.host, vol.path().join("x"));
        assert!(r.read_only);
        let r = resolve(&view, "/tovol/y", false).unwrap();
        assert_eq!(r.host, vol.path().join("sub/y"));
        // The last component is not followed unless asked.
        let r = resolve(&view, "/link", false).unwrap();
        assert_eq!(r.host, rootfs.join("link"));
        let r = resolve(&view, "/../../../link", true).unwrap();
        assert_eq!(r.host, rootfs.join("etc"));
    }
}
