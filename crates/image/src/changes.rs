//! `docker diff`: what a container changed, read from its overlay upper dir against the
//! image's layers the way dockerd's overlay2 differ does. A 0:0 char device is a deleted
//! path; an opaque directory that existed below was deleted and made again; anything else
//! is added, or modified when some layer below has the path. A directory that exists below
//! is reported as modified when its metadata differs and something under it changed, when
//! a child was added or deleted, or when its mode or owner changed.
//!
//! The empty mount points the OCI runtime makes for the container (`/etc/hosts`, …) are
//! not changes: dockerd keeps them in an "init" layer under the container's own, which
//! neither `docker diff` nor `docker commit` shows.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_core::image::{Change, ChangeKind};

/// What the runtime creates in the writable layer as mount points (dockerd's init layer).
const MOUNT_TARGETS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/console",
    "/proc",
    "/sys",
    "/.dockerenv",
];

fn err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// True for an empty file or directory at one of the runtime's mount targets (`rel` is
/// absolute inside the container).
pub fn is_mount_stub(rel: &Path, path: &Path, meta: &fs::Metadata) -> bool {
    if !MOUNT_TARGETS.iter().any(|t| Path::new(t) == rel) {
        return false;
    }
    if meta.is_file() {
        return meta.len() == 0;
    }
    meta.is_dir()
        && fs::read_dir(path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
}

/// The changes in `upper` over `lowers` (base layer first), paths absolute, in walk order
/// (sorted, parents first). Blocking.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut w = Walk {
        upper,
        // Top layer first, as a lookup goes through an overlay.
        lowers: lowers.iter().rev().collect(),
        out: Vec::new(),
    };
    w.dir(Path::new("/"))?;
    Ok(w.out)
}

struct Walk<'a> {
    upper: &'a Path,
    lowers: Vec<&'a PathBuf>,
    out: Vec<Change>,
}

impl Walk<'_> {
    fn real(&self, base: &Path, rel: &Path) -> PathBuf {
        base.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    fn below(&self, rel: &Path) -> io::Result<Option<fs::Metadata>> {
        for l in &self.lowers {
            let p = self.real(l, rel);
            match fs::metadata(&p) {
                Ok(m) => return Ok(Some(m)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // A path under a non-directory in a layer is simply not there.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => {}
                Err(e) => return Err(err(&p, "reading", e)),
            }
        }
        Ok(None)
    }

    fn dir(&mut self, rel: &Path) -> io::Result<()> {
        let dir = self.real(self.upper, rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| err(&dir, "listing", e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| err(&dir, "listing", e))?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let path = self.real(self.upper, &rel);
            let meta = fs::symlink_metadata(&path).map_err(|e| err(&path, "reading", e))?;
            let below = self.below(&rel)?;
            if below.is_none() && is_mount_stub(&rel, &path, &meta) {
                continue;
            }
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                self.push(&rel, ChangeKind::Deleted);
                continue;
            }
            if !meta.is_dir() {
                let kind = match below {
                    None => ChangeKind::Added,
                    Some(_) => ChangeKind::Modified,
                };
                self.push(&rel, kind);
                continue;
            }
            let opaque = xattr::get(&path, "trusted.overlay.opaque")
                .ok()
                .flatten()
                .as_deref()
                == Some(b"y");
            match below {
                Some(_) if opaque => self.push(&rel, ChangeKind::Deleted),
                Some(b) if b.is_dir() => {
                    let at = self.out.len();
                    self.dir(&rel)?;
                    let sub = &self.out[at..];
                    let child_added_or_deleted = sub.iter().any(|c| {
                        Path::new(&c.path).parent() == Some(rel.as_path())
                            && c.kind != ChangeKind::Modified
                    });
                    let owner_or_mode =
                        meta.mode() != b.mode() || meta.uid() != b.uid() || meta.gid() != b.gid();
                    let report = owner_or_mode
                        || child_added_or_deleted
                        || (!sub.is_empty() && !same_dir(&meta, &b));
                    if report {
                        self.out.insert(
                            at,
                            Change {
                                path: rel.to_string_lossy().into_owned(),
                                kind: ChangeKind::Modified,
                            },
                        );
                    }
                    continue;
                }
                Some(_) => self.push(&rel, ChangeKind::Modified),
                None => self.push(&rel, ChangeKind::Added),
            }
            self.dir(&rel)?;
        }
        Ok(())
    }

    fn push(&mut self, rel: &Path, kind: ChangeKind) {
        self.out.push(Change {
            path: rel.to_string_lossy().into_owned(),
            kind,
        });
    }
}

fn same_dir(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.mode() == b.mode()
        && a.size() == b.size()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use filetime::FileTime;
    use nix::sys::stat::{Mode, SFlag, mknod};

    fn kinds(upper: &Path, lower: &Path) -> Vec<(String, ChangeKind)> {
        changes(upper, &[lower.to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect()
    }

    #[test]
    fn added_modified_deleted() {
        let root = nix::unistd::geteuid().is_root();
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/passwd"), b"root").unwrap();
        fs::write(lower.join("etc/gone"), b"x").unwrap();
        let old = FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_mtime(lower.join("etc"), old).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), b"root2").unwrap();
        // The runtime's empty mount point: not a change.
        fs::write(upper.join("etc/hosts"), b"").unwrap();
        fs::create_dir_all(upper.join("new/deeper")).unwrap();
        fs::write(upper.join("hello"), b"hi").unwrap();
        if root {
            mknod(&upper.join("etc/gone"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        }
        let mut want = vec![("/etc".to_string(), ChangeKind::Modified)];
        if root {
            want.push(("/etc/gone".into(), ChangeKind::Deleted));
        }
        want.push(("/etc/passwd".into(), ChangeKind::Modified));
        want.push(("/hello".into(), ChangeKind::Added));
        want.push(("/new".into(), ChangeKind::Added));
        want.push(("/new/deeper".into(), ChangeKind::Added));
        assert_eq!(kinds(&upper, &lower), want);
    }

    #[test]
    fn a_directory_holding_only_mount_points_is_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        filetime::set_file_mtime(lower.join("etc"), FileTime::from_unix_time(1, 0)).unwrap();
        fs::write(upper.join("etc/resolv.conf"), b"").unwrap();
        fs::write(upper.join("etc/hostname"), b"").unwrap();
        fs::create_dir(upper.join("proc")).unwrap();
        assert_eq!(kinds(&upper, &lower), vec![]);
        // A mount target with content is the container's own file.
        fs::write(upper.join("etc/hostname"), b"mine").unwrap();
        assert_eq!(
            kinds(&upper, &lower),
            vec![
                ("/etc".to_string(), ChangeKind::Modified),
                ("/etc/hostname".to_string(), ChangeKind::Added),
            ]
        );
    }
}
