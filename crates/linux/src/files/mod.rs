//! The real [`ContainerFiles`]: `docker cp` from and to a container's files, through the
//! node paths [`resolve`] finds (the container's root filesystem, mounted while it exists,
//! and the sources of its mounts). Works whether the container runs or not, like dockerd.

mod resolve;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_core::files::{ContainerFiles, ExtractOptions, FilesError, FsView, PathStat};

pub use resolve::{clean, resolve};

#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxFiles;

fn failed(what: &str, path: &str, e: impl std::fmt::Display) -> FilesError {
    FilesError::Failed(format!("{what} {path}: {e}"))
}

/// Go's `os.FileMode` for a node file's metadata (what docker clients decode).
fn go_mode(md: &std::fs::Metadata) -> u32 {
    let ft = md.file_type();
    let mode = md.mode();
    let mut m = mode & 0o777;
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        m |= PathStat::MODE_DIR;
    }
    if ft.is_symlink() {
        m |= PathStat::MODE_SYMLINK;
    }
    if ft.is_block_device() {
        m |= 1 << 26;
    }
    if ft.is_char_device() {
        m |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        m |= 1 << 25;
    }
    if ft.is_socket() {
        m |= 1 << 24;
    }
    if mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

fn stat_of(host: &Path, path: &str) -> Result<PathStat, FilesError> {
    let md = match std::fs::symlink_metadata(host) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FilesError::NotFound(path.to_string()));
        }
        Err(e) => return Err(failed("stat", path, e)),
    };
    let link_target = if md.file_type().is_symlink() {
        std::fs::read_link(host)
            .map(|t| t.display().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: base_name(path),
        size: md.size() as i64,
        mode: go_mode(&md),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        link_target,
    })
}

/// The name dockerd gives the archive's top entry: the path's last component, `.` for
/// `dir/.`, `/` for the root.
fn base_name(path: &str) -> String {
    if path.ends_with("/.") {
        return ".".into();
    }
    let c = clean(path);
    match c.rsplit_once('/') {
        Some((_, "")) | None => "/".into(),
        Some((_, last)) => last.to_string(),
    }
}

impl ContainerFiles for LinuxFiles {
    fn stat(&self, view: &FsView, path: &str) -> Result<PathStat, FilesError> {
        let r = resolve(view, path, path.ends_with("/.") || path.ends_with('/'))?;
        stat_of(&r.host, path)
    }

    fn archive(
        &self,
        view: &FsView,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<PathStat, FilesError> {
        let r = resolve(view, path, path.ends_with("/.") || path.ends_with('/'))?;
        let stat = stat_of(&r.host, path)?;
        let name = match stat.name.as_str() {
            "/" => ".".to_string(),
            n => n.to_string(),
        };
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        let res = if stat.is_dir() {
            b.append_dir_all(&name, &r.host)
        } else {
            b.append_path_with_name(&r.host, &name)
        };
        res.and_then(|_| b.finish())
            .map_err(|e| failed("archiving", path, e))?;
        Ok(stat)
    }

    fn extract(
        &self,
        view: &FsView,
        dir: &str,
        tar: &mut dyn Read,
        opts: ExtractOptions,
    ) -> Result<(), FilesError> {
        let target = resolve(view, dir, true)?;
        let md = std::fs::metadata(&target.host).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FilesError::NotFound(dir.to_string()),
            _ => failed("stat", dir, e),
        })?;
        if !md.is_dir() {
            return Err(FilesError::InvalidArgument(format!(
                "extraction point is not a directory: {dir}"
            )));
        }
        if target.read_only {
            return Err(FilesError::InvalidArgument(format!(
                "mounted volume is marked read-only: {dir}"
            )));
        }
        let base = clean(dir);
        let mut archive = tar::Archive::new(tar);
        let entries = archive
            .entries()
            .map_err(|e| FilesError::InvalidArgument(format!("reading the archive: {e}")))?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| FilesError::InvalidArgument(format!("reading the archive: {e}")))?;
            let name = entry
                .path()
                .map_err(|e| FilesError::InvalidArgument(format!("an entry's name: {e}")))?
                .to_string_lossy()
                .into_owned();
            let ctr_path = clean(&format!("{base}/{name}"));
            if ctr_path == base && entry.header().entry_type().is_dir() {
                continue;
            }
            let dest = resolve(view, &ctr_path, false)?;
            if dest.read_only {
                return Err(FilesError::InvalidArgument(format!(
                    "mounted volume is marked read-only: {ctr_path}"
                )));
            }
            unpack_one(view, &base, &mut entry, &dest.host, &ctr_path, opts)?;
        }
        Ok(())
    }
}

/// Writes one entry at `host`, replacing what is there (within dockerd's rules).
fn unpack_one<R: Read>(
    view: &FsView,
    base: &str,
    entry: &mut tar::Entry<'_, R>,
    host: &Path,
    ctr_path: &str,
    opts: ExtractOptions,
) -> Result<(), FilesError> {
    let kind = entry.header().entry_type();
    let existing = std::fs::symlink_metadata(host).ok();
    if let Some(md) = &existing {
        let (old_dir, new_dir) = (md.is_dir(), kind.is_dir());
        if opts.no_overwrite_dir_non_dir && old_dir != new_dir {
            return Err(FilesError::InvalidArgument(format!(
                "cannot overwrite {} {ctr_path} with {}",
                if old_dir {
                    "directory"
                } else {
                    "non-directory"
                },
                if new_dir {
                    "a directory"
                } else {
                    "a non-directory"
                },
            )));
        }
        if !(old_dir && new_dir) {
            let gone = if old_dir {
                std::fs::remove_dir_all(host)
            } else {
                std::fs::remove_file(host)
            };
            gone.map_err(|e| failed("replacing", ctr_path, e))?;
        }
    }
    if let Some(parent) = host.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed("creating", ctr_path, e))?;
    }
    if kind.is_hard_link() {
        // The link's target is named from the archive's root, the extraction point: a
        // container path too, resolved like the others, never taken as a node path.
        let target = entry.link_name().ok().flatten().ok_or_else(|| {
            FilesError::InvalidArgument(format!("hard link {ctr_path} has no target"))
        })?;
        let src = resolve(view, &format!("{base}/{}", target.to_string_lossy()), false)?;
        return std::fs::hard_link(&src.host, host).map_err(|e| failed("linking", ctr_path, e));
    }
    entry.set_preserve_permissions(true);
    entry.set_preserve_mtime(true);
    entry
        .unpack(host)
        .map_err(|e| failed("writing", ctr_path, e))?;
    let (uid, gid) = if opts.copy_uid_gid {
        (
            entry.header().uid().unwrap_or(0) as u32,
            entry.header().gid().unwrap_or(0) as u32,
        )
    } else {
        (0, 0)
    };
    std::os::unix::fs::lchown(host, Some(uid), Some(gid))
        .map_err(|e| failed("chown", ctr_path, e))?;
    if kind.is_dir() {
        // unpack leaves an existing directory's mode alone.
        if let Ok(mode) = entry.header().mode() {
            let _ = std::fs::set_permissions(host, std::fs::Permissions::from_mode(mode & 0o7777));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
