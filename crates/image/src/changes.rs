//! `docker diff`: what a container changed, read from its overlay upper dir against the
//! image's layers the way dockerd's overlay2 differ does. A 0:0 char device is a deleted
//! path; an opaque directory that existed below was deleted and made again; anything else
//! is added, or modified when some layer below has the path. A directory that exists below
//! with the same mode, size and mtime is only a parent of changes and is reported once as
//! modified when a child is added or deleted.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_core::image::{Change, ChangeKind};

fn err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// The changes in `upper` over `lowers` (base layer first), paths absolute, in walk order
/// (sorted, parents first). Blocking.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut w = Walk {
        upper,
        // Top layer first, as a lookup goes through an overlay.
        lowers: lowers.iter().rev().collect(),
        out: Vec::new(),
        changed_dirs: HashSet::new(),
    };
    w.dir(Path::new("/"))?;
    Ok(w.out)
}

struct Walk<'a> {
    upper: &'a Path,
    lowers: Vec<&'a PathBuf>,
    out: Vec<Change>,
    changed_dirs: HashSet<PathBuf>,
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
            let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
                Some(ChangeKind::Deleted)
            } else if meta.is_dir()
                && below.is_some()
                && xattr::get(&path, "trusted.overlay.opaque")
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(b"y")
            {
                Some(ChangeKind::Deleted)
            } else {
                match &below {
                    None => Some(ChangeKind::Added),
                    Some(b) if b.is_dir() && meta.is_dir() && same_dir(&meta, b) => None,
                    Some(_) => Some(ChangeKind::Modified),
                }
            };
            if meta.is_dir() {
                self.changed_dirs.insert(rel.clone());
            }
            if let Some(kind) = kind {
                if matches!(kind, ChangeKind::Added | ChangeKind::Deleted)
                    && let Some(parent) = rel.parent()
                    && parent != Path::new("/")
                    && self.changed_dirs.insert(parent.to_path_buf())
                {
                    self.push(parent, ChangeKind::Modified);
                }
                self.push(&rel, kind);
            }
            if meta.is_dir() {
                self.dir(&rel)?;
            }
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
    a.mode() == b.mode() && a.size() == b.size() && a.mtime() == b.mtime()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{Mode, SFlag, mknod};

    #[test]
    fn added_modified_deleted() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/passwd"), b"root").unwrap();
        fs::write(lower.join("etc/gone"), b"x").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), b"root2").unwrap();
        fs::write(upper.join("hello"), b"hi").unwrap();
        if nix::unistd::geteuid().is_root() {
            mknod(&upper.join("etc/gone"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        }
        let got: Vec<(String, ChangeKind)> = changes(&upper, &[lower])
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        let mut want = vec![("/etc".to_string(), ChangeKind::Modified)];
        if nix::unistd::geteuid().is_root() {
            want.push(("/etc/gone".into(), ChangeKind::Deleted));
        }
        want.push(("/etc/passwd".into(), ChangeKind::Modified));
        want.push(("/hello".into(), ChangeKind::Added));
        assert_eq!(got, want);
    }
}
