//! The rootfs of a container in a user namespace, idmapped.
//!
//! overlayfs cannot itself be idmapped (mount_setattr says EINVAL), but since Linux 5.19
//! it takes idmapped lower layers. So the overlay berthd mounted is rebuilt here, in the
//! container's mount namespace: the dir holding the image layers is cloned and idmapped
//! with the container's user namespace, attached at a scratch point in the bundle, and
//! a new overlay of the same lower dirs, seen through that idmapped mount, is stacked on
//! the rootfs. Image files the node's root owns on disk are then the container root's;
//! no image layer is copied or chowned. The writable layer is not idmapped: overlay does
//! its own work (work dir, copy-up) with the node root's credentials, which an idmapped
//! mount of the pod's range would refuse; it holds the container's files with their
//! mapped ids, and its (new, empty) top dir is given to the container's root so `/` is
//! the container root's. A rootfs that is a plain bind (no overlay) is idmapped
//! directly.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::error::{InitError, Result};
use super::mounts::idmapped_bind;
use crate::ns::mountinfo;

const STEP: &str = "idmapped rootfs";
/// mount(2) copies at most one page of options.
const MAX_OPTIONS: usize = 4096 - 1;

/// The layers of the overlay mounted at `rootfs`: (lowers top first, upper, work).
type Layers = (Vec<PathBuf>, Option<PathBuf>, Option<PathBuf>);

/// Mounts the container's rootfs idmapped with `userns` on top of `rootfs`.
/// `root_ids`: the node's uid and gid of the container's root.
pub fn mount_idmapped(
    rootfs: &Path,
    bundle: &Path,
    userns: BorrowedFd<'_>,
    root_ids: (u32, u32),
) -> Result<()> {
    let Some(layers) = overlay_layers(rootfs)? else {
        return idmapped_bind(rootfs, rootfs, userns, true, "the rootfs");
    };
    let (lowers, upper, work) = layers;
    let all: Vec<&PathBuf> = lowers.iter().collect();
    if let Some(p) = all.iter().find(|p| !p.is_absolute()) {
        return Err(InitError::new(
            STEP,
            format!(
                "overlay layer {} of {} is relative; idmapping needs absolute layer paths",
                p.display(),
                rootfs.display()
            ),
        ));
    }
    let parent = common_parent(&all);
    let scratch = bundle.join(".idmapped-layers");
    std::fs::create_dir_all(&scratch)
        .map_err(|e| InitError::new(STEP, format!("{}: {e}", scratch.display())))?;
    idmapped_bind(&parent, &scratch, userns, false, "the rootfs layers")?;
    let seen = |p: &PathBuf| scratch.join(p.strip_prefix(&parent).unwrap_or(p));
    let lower: Vec<String> = lowers
        .iter()
        .map(|p| seen(p).display().to_string())
        .collect();
    let mut options = format!("lowerdir={}", lower.join(":"));
    if let (Some(u), Some(w)) = (&upper, &work) {
        nix::unistd::chown(
            u,
            Some(nix::unistd::Uid::from_raw(root_ids.0)),
            Some(nix::unistd::Gid::from_raw(root_ids.1)),
        )
        .map_err(|e| InitError::new(STEP, format!("chown {}: {e}", u.display())))?;
        options.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    let result = if options.len() > MAX_OPTIONS {
        Err(InitError::new(
            STEP,
            format!(
                "{} layers make overlay options longer than a page",
                lowers.len()
            ),
        ))
    } else {
        mount(
            Some("overlay"),
            rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| {
            InitError::new(
                STEP,
                format!(
                    "overlay on idmapped layers at {}: {e} (needs Linux 5.19 or later)",
                    rootfs.display()
                ),
            )
        })
    };
    // The overlay holds its layers; the scratch mount is no longer needed.
    let _ = umount2(&scratch, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&scratch);
    result
}

/// The layers of the overlay on top of `rootfs`, None when it is not an overlay.
fn overlay_layers(rootfs: &Path) -> Result<Option<Layers>> {
    let want = mountinfo::canonical(rootfs);
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| InitError::new(STEP, format!("/proc/self/mountinfo: {e}")))?;
    // The last entry for the mount point is the one on top.
    let mut found: Option<Option<Layers>> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        if Path::new(&unescape(mp)) != want {
            continue;
        }
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let fstype = fields.get(sep + 1).copied().unwrap_or_default();
        let opts = fields.get(sep + 3).copied().unwrap_or_default();
        found = Some((fstype == "overlay").then(|| parse_options(opts)));
    }
    Ok(found.flatten())
}

fn parse_options(opts: &str) -> Layers {
    let (mut lowers, mut upper, mut work) = (Vec::new(), None, None);
    for o in opts.split(',') {
        if let Some(v) = o.strip_prefix("lowerdir=") {
            lowers.extend(v.split(':').map(|p| PathBuf::from(unescape(p))));
        } else if let Some(v) = o.strip_prefix("lowerdir+=") {
            lowers.push(PathBuf::from(unescape(v)));
        } else if let Some(v) = o.strip_prefix("upperdir=") {
            upper = Some(PathBuf::from(unescape(v)));
        } else if let Some(v) = o.strip_prefix("workdir=") {
            work = Some(PathBuf::from(unescape(v)));
        }
    }
    (lowers, upper, work)
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| c.is_ascii_digit()) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The longest common ancestor dir of absolute paths.
fn common_parent(paths: &[&PathBuf]) -> PathBuf {
    let mut parent = paths
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    while !paths.iter().all(|p| p.starts_with(&parent)) {
        if !parent.pop() {
            return PathBuf::from("/");
        }
    }
    parent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_are_read() {
        let (l, u, w) =
            parse_options("rw,lowerdir=/s/2/fs:/s/1/fs,upperdir=/c/a\\040b/upper,workdir=/c/work");
        assert_eq!(l, [PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")]);
        assert_eq!(u, Some(PathBuf::from("/c/a b/upper")));
        assert_eq!(w, Some(PathBuf::from("/c/work")));
        let a = PathBuf::from("/r/snap/1/fs");
        let b = PathBuf::from("/r/ctr/x/upper");
        assert_eq!(common_parent(&[&a, &b]), PathBuf::from("/r"));
    }
}
