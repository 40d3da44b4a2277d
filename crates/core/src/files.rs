//! Copying files into and out of a container from the node (`docker cp`), as a port: the
//! node side (`berth-linux`) resolves container paths inside the container's root
//! filesystem and its mounts, never leaving them, and reads or writes tar streams.

use std::io::{Read, Write};
use std::path::PathBuf;

/// A container's files as the node sees them: its root filesystem (mounted while the
/// container exists) and the node directories mounted into it.
#[derive(Debug, Clone, Default)]
pub struct FsView {
    pub rootfs: PathBuf,
    /// (path in the container, directory or file on the node, read-only).
    pub mounts: Vec<(String, PathBuf, bool)>,
}

/// What `stat` tells of a path (docker's `PathStat`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits: permissions plus type flags (directory 1<<31, symlink
    /// 1<<27…), which is what docker clients decode.
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// A symlink's target (as written in the link), else empty.
    pub link_target: String,
}

impl PathStat {
    pub const MODE_DIR: u32 = 1 << 31;
    pub const MODE_SYMLINK: u32 = 1 << 27;

    pub fn is_dir(&self) -> bool {
        self.mode & Self::MODE_DIR != 0
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the archive's owners; else files belong to the container's root (0:0).
    pub copy_uid_gid: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("Could not find the file {0} in container")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Failed(String),
}

/// Blocking: callers run these off the async workers.
pub trait ContainerFiles: Send + Sync {
    /// The path's own stat (a final symlink is not followed).
    fn stat(&self, view: &FsView, path: &str) -> Result<PathStat, FilesError>;
    /// Writes a tar of `path` (a directory with everything below it) to `out`, its entries
    /// named after the path's last component, as dockerd's archive; returns its stat.
    fn archive(
        &self,
        view: &FsView,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<PathStat, FilesError>;
    /// Unpacks the tar read from `tar` into the existing directory `dir`.
    fn extract(
        &self,
        view: &FsView,
        dir: &str,
        tar: &mut dyn Read,
        opts: ExtractOptions,
    ) -> Result<(), FilesError>;
}
