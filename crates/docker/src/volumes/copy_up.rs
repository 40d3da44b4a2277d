//! dockerd's copy-up: a new (empty) volume mounted where the image has content gets that
//! content, with the directory's owner and mode, so `VOLUME /var/lib/x` keeps what the
//! image put there and a named volume starts from the image's files.
//!
//! It runs once the container is created and before its create request is answered (so
//! before it can start): the container's rootfs is then mounted at `<bundle>/rootfs` (the
//! OCI bundle's root) and nothing has run in it yet, so it shows exactly the image. The
//! volume is bind-mounted only inside the container's mount namespace, so the rootfs path
//! on the host still shows the image's directory underneath.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Copies the image's `dest` (under `rootfs`) into the volume directory `data` when that is
/// empty and the image has a directory there; true when something was copied.
pub fn copy_up(rootfs: &Path, dest: &str, data: &Path) -> io::Result<bool> {
    let Some(src) = resolve_in_root(rootfs, dest) else {
        return Ok(false);
    };
    let meta = match fs::symlink_metadata(&src) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() || fs::read_dir(data)?.next().is_some() {
        return Ok(false);
    }
    // Were the volume visible in the host's view of the rootfs, the source would be the
    // volume itself: nothing to copy then.
    let dmeta = fs::metadata(data)?;
    if (dmeta.dev(), dmeta.ino()) == (meta.dev(), meta.ino()) {
        return Ok(false);
    }
    copy_dir(&src, data)?;
    set_attrs(data, &meta)?;
    Ok(true)
}

/// `path` looked up inside `root` as the container would see it: symlinks on the way
/// resolve against `root`, never out of it. None when a component is missing or the
/// links loop.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let here = done
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&c);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = fs::read_link(&here).ok()?;
                if target.is_absolute() {
                    done.clear();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(_) => done.push(c),
            Err(_) => return None,
        }
    }
    Some(done.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// Copies the entries of `src` into the existing directory `dst`: directories, files and
/// symlinks with owner, mode and modification time. Device nodes, fifos and sockets have no
/// place in a volume's data and are left out.
fn copy_dir(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
        } else if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_dir(&from, &to)?;
            set_attrs(&to, &meta)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            set_attrs(&to, &meta)?;
        } else {
            tracing::debug!(path = %from.display(), "copy-up leaves out a special file");
        }
    }
    Ok(())
}

/// Owner, then mode (a chown clears set-id bits), then modification time.
fn set_attrs(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    if let Ok(mtime) = meta.modified() {
        let f = fs::File::open(path)?;
        f.set_times(fs::FileTimes::new().set_modified(mtime))?;
    }
    Ok(())
}
