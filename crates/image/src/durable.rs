//! Makes a freshly unpacked tree durable by fsyncing exactly its own files and directories.
//!
//! Why not `syncfs()`: it flushes every dirty page of the whole filesystem, so a pull paid
//! for whatever other processes (containers, other runtimes, logs) had written and not yet
//! flushed: hundreds of milliseconds behind a busy writer (BENCHMARKS.md, *Anomaly*).
//! fsync of our own inodes costs only our data. The fsyncs run on a few threads at once:
//! the filesystem journal then commits them together (ext4 and xfs group concurrent
//! fsyncs into one transaction), so a layer of thousands of small files does not pay one
//! journal commit per file.
//!
//! Regular files carry the data; directories carry the entries (names of files, symlinks,
//! device nodes, hard links) and, with them, the creation of those inodes in the journal.
//! Other kinds cannot be opened for fsync (symlinks) or must not be opened (FIFOs block).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_core::image::ImageError;

use crate::content::io_error;

/// Threads fsyncing at once: enough for the journal to batch commits, few enough not to
/// crowd a small node.
const WORKERS: usize = 4;

/// fsyncs every regular file and directory under `root` (and `root` itself). Blocking.
pub fn sync_tree(root: &Path) -> Result<(), ImageError> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        let dir = dirs[i].clone();
        i += 1;
        let entries = std::fs::read_dir(&dir).map_err(|e| io_error("reading", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("reading", &dir, e))?;
            // DirEntry::file_type does not follow symlinks.
            let kind = entry
                .file_type()
                .map_err(|e| io_error("reading the type of", &entry.path(), e))?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    // Files first: a directory's fsync then also covers the sizes its files just got.
    fsync_all(&files)?;
    fsync_all(&dirs)
}

/// fsyncs `paths` on up to [`WORKERS`] threads; the first error wins.
fn fsync_all(paths: &[PathBuf]) -> Result<(), ImageError> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<ImageError>> = Mutex::new(None);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else { return };
            if let Err(e) = fsync_path(path) {
                let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
                // Stop everyone: the snapshot is discarded anyway.
                next.store(paths.len(), Ordering::Relaxed);
                return;
            }
        }
    };
    let workers = WORKERS.min(paths.len());
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn fsync_path(path: &Path) -> Result<(), ImageError> {
    // Read-only is enough for fsync; O_NOFOLLOW: the walk saw a file or a directory here.
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_error("opening for fsync", path, e))?;
    f.sync_all().map_err(|e| io_error("fsync", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_files_and_dirs_and_skips_other_kinds() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        for i in 0..20 {
            std::fs::write(root.join(format!("a/b/f{i}")), b"x").expect("write");
        }
        std::os::unix::fs::symlink("/nonexistent", root.join("a/dangling")).expect("symlink");
        nix::unistd::mkfifo(&root.join("a/fifo"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        sync_tree(root).expect("sync_tree");
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let missing = d.path().join("gone");
        let e = sync_tree(&missing).expect_err("missing root");
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
