//! Writing one tar entry at a time into the layer directory.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::UnpackError;
use super::meta::{self, Meta, io_err};
use super::path::{ResolveError, normalize, resolve_dir};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// `.wh..wh..opq` with the whiteout prefix already stripped.
const OPAQUE_REST: &[u8] = b".wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Mode and times of a directory, applied after all entries so that a read-only directory
/// still receives its contents and its mtime is not bumped by them.
struct DirMeta {
    mode: u32,
    mtime: FileTime,
    name: String,
}

pub(super) struct Unpacker<'a> {
    root: &'a Path,
    is_root: bool,
    dirs: HashMap<PathBuf, DirMeta>,
    /// Resolved paths of the non-directory entries written so far: the only valid hardlink
    /// targets (a hardlink may never reach a file that this layer did not create).
    linkable: HashSet<PathBuf>,
}

impl<'a> Unpacker<'a> {
    pub fn new(root: &'a Path) -> Self {
        Self {
            root,
            is_root: nix::unistd::geteuid().is_root(),
            dirs: HashMap::new(),
            linkable: HashSet::new(),
        }
    }

    pub fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            tracing::debug!(entry = %name, "PAX global header ignored");
            return Ok(());
        }
        let parts = normalize(Path::new(OsStr::from_bytes(&raw)))
            .ok_or_else(|| UnpackError::PathEscapes { path: name.clone() })?;
        let Some((last, parents)) = parts.split_last() else {
            return self.root_entry(entry, &name);
        };
        if let Some(hidden) = last.as_bytes().strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(entry, parents, hidden, &name);
        }
        let path = self.parent(parents, &name)?.join(last);
        if kind.is_dir() {
            return self.directory(entry, &path, &name);
        }
        if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            self.file(entry, &path, &name)?;
        } else if kind.is_symlink() {
            self.symlink(entry, &path, &name)?;
        } else if kind.is_hard_link() {
            self.hardlink(entry, &path, &name)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            self.node(entry, &path, &name)?;
        } else {
            tracing::debug!(entry = %name, kind = ?kind, "unsupported tar entry type skipped");
            return Ok(());
        }
        self.linkable.insert(path);
        Ok(())
    }

    /// Apply the deferred directory modes and times, deepest first.
    pub fn finish(&mut self) -> Result<(), UnpackError> {
        let mut dirs: Vec<_> = self.dirs.drain().collect();
        dirs.sort_by_key(|(path, _)| Reverse(path.components().count()));
        for (path, dir) in dirs {
            // Replaced by a later non-directory entry: nothing left to apply.
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_dir() => {}
                _ => continue,
            }
            meta::chmod(&path, dir.mode, &dir.name)?;
            meta::set_times(&path, dir.mtime, &dir.name)?;
        }
        Ok(())
    }

    /// `./` names the layer root: only its metadata can change.
    fn root_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), UnpackError> {
        if !entry.header().entry_type().is_dir() {
            return Err(UnpackError::Invalid {
                path: name.to_string(),
                reason: "only a directory entry may name the layer root".into(),
            });
        }
        let root = self.root.to_path_buf();
        self.directory(entry, &root, name)
    }

    fn parent(&self, parents: &[OsString], name: &str) -> Result<PathBuf, UnpackError> {
        resolve_dir(self.root, parents).map_err(|e| match e {
            ResolveError::NotADirectory(component) => UnpackError::NotADirectory {
                path: name.to_string(),
                component: component.display().to_string(),
            },
            ResolveError::Loop => UnpackError::SymlinkLoop {
                path: name.to_string(),
            },
            ResolveError::Io(at, error) => UnpackError::Io {
                path: name.to_string(),
                op: format!("resolve parent directory {}", at.display()),
                error,
            },
        })
    }

    /// Remove whatever is at `path` (never following it) so a new entry can take its place.
    /// A directory is kept when `keep_dir` (directory over directory only updates metadata);
    /// returns whether a directory was kept.
    fn clear(&mut self, path: &Path, keep_dir: bool, name: &str) -> Result<bool, UnpackError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(name, "lstat existing entry")(e)),
            Ok(md) if md.is_dir() => {
                if keep_dir {
                    return Ok(true);
                }
                fs::remove_dir_all(path).map_err(io_err(name, "remove existing directory"))?;
                self.dirs.retain(|dir, _| !dir.starts_with(path));
                self.linkable.retain(|file| !file.starts_with(path));
                Ok(false)
            }
            Ok(_) => {
                fs::remove_file(path).map_err(io_err(name, "remove existing entry"))?;
                self.linkable.remove(path);
                Ok(false)
            }
        }
    }

    fn directory<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let meta = Meta::read(entry, name)?;
        if !self.clear(path, true, name)? {
            // Owner-writable until `finish` sets the real mode.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(io_err(name, "create directory"))?;
        }
        meta::apply_dir_early(path, &meta, self.is_root, name)?;
        self.dirs.insert(
            path.to_path_buf(),
            DirMeta {
                mode: meta.mode,
                mtime: meta.mtime,
                name: name.to_string(),
            },
        );
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let meta = Meta::read(entry, name)?;
        self.clear(path, false, name)?;
        // O_EXCL already refuses to follow a symlink; O_NOFOLLOW states the intent.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err(name, "create file"))?;
        io::copy(entry, &mut file).map_err(io_err(name, "write file contents"))?;
        drop(file);
        meta::apply_node(path, &meta, self.is_root, name)
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let target = link_name(entry, name)?;
        let meta = Meta::read(entry, name)?;
        self.clear(path, false, name)?;
        // The target is stored verbatim: it may point anywhere, later entries resolve through
        // it only scoped to the root.
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
            .map_err(io_err(name, "create symlink"))?;
        meta::apply_symlink(path, &meta, self.is_root, name)
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let raw = link_name(entry, name)?;
        let target = String::from_utf8_lossy(&raw).into_owned();
        let bad = |reason| UnpackError::BadHardlink {
            path: name.to_string(),
            target: target.clone(),
            reason,
        };
        let parts = normalize(Path::new(OsStr::from_bytes(&raw)))
            .ok_or_else(|| bad("escapes the layer root"))?;
        let Some((last, parents)) = parts.split_last() else {
            return Err(bad("names the layer root"));
        };
        let source = self.parent(parents, name)?.join(last);
        if !self.linkable.contains(&source) {
            return Err(bad("is not an earlier non-directory entry of this layer"));
        }
        match fs::symlink_metadata(&source) {
            Ok(md) if md.is_dir() => return Err(bad("is a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(bad("no longer exists")),
            Err(e) => return Err(io_err(name, "lstat hardlink target")(e)),
        }
        if source == path {
            return Ok(());
        }
        self.clear(path, false, name)?;
        // std's hard_link is linkat(2) without AT_SYMLINK_FOLLOW: a symlink target is linked as
        // the symlink itself and never dereferenced, so no file outside the root is reachable.
        fs::hard_link(&source, path).map_err(io_err(name, "create hardlink"))
    }

    fn node<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let header = entry.header();
        let kind = header.entry_type();
        let number = |v: io::Result<Option<u32>>| {
            v.map(|n| u64::from(n.unwrap_or(0)))
                .map_err(|e| UnpackError::Invalid {
                    path: name.to_string(),
                    reason: format!("bad device number in header: {e}"),
                })
        };
        let dev = makedev(
            number(header.device_major())?,
            number(header.device_minor())?,
        );
        let flag = if kind.is_character_special() {
            SFlag::S_IFCHR
        } else if kind.is_block_special() {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFIFO
        };
        let meta = Meta::read(entry, name)?;
        self.clear(path, false, name)?;
        mknod(path, flag, Mode::from_bits_truncate(0o600), dev)
            .map_err(|errno| io_err(name, "mknod")(io::Error::from(errno)))?;
        meta::apply_node(path, &meta, self.is_root, name)
    }

    /// OCI whiteouts in overlay form: `.wh.x` → char device 0:0 `x`; `.wh..wh..opq` → the
    /// directory is marked opaque; other `.wh..wh.` meta entries are ignored.
    fn whiteout<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parents: &[OsString],
        hidden: &[u8],
        name: &str,
    ) -> Result<(), UnpackError> {
        if hidden == OPAQUE_REST {
            let dir = self.parent(parents, name)?;
            return xattr::set(&dir, OPAQUE_XATTR, b"y")
                .map_err(io_err(name, "set trusted.overlay.opaque"));
        }
        if hidden.starts_with(WHITEOUT_PREFIX) {
            tracing::debug!(entry = %name, "whiteout meta entry ignored");
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(UnpackError::Invalid {
                path: name.to_string(),
                reason: "whiteout does not name a file".into(),
            });
        }
        let meta = Meta::read(entry, name)?;
        let path = self.parent(parents, name)?.join(OsStr::from_bytes(hidden));
        self.clear(&path, false, name)?;
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|errno| io_err(name, "mknod whiteout")(io::Error::from(errno)))?;
        meta::chown(&path, &meta, self.is_root, name)
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>, UnpackError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(UnpackError::Invalid {
            path: name.to_string(),
            reason: "link entry without a target".into(),
        }),
    }
}
