//! Turning a tar entry name into a location inside the layer root, without ever leaving it.
//!
//! Design choice for parents that are symlinks: we *resolve them scoped to the root* (like
//! `filepath-securejoin` and containerd's `fs.RootPath`) rather than refuse the entry. Both are
//! safe; resolving keeps working the tars that GNU tar and containerd accept (an entry named
//! through a symlinked directory created earlier in the same layer), and a symlink can only
//! ever send us to another place under the root: an absolute target restarts at the root and a
//! `..` stops at it, exactly as if the root were `/` of a chroot. Every component we step into
//! has been `lstat`ed as a real directory, so the kernel's own path walk of the joined result
//! crosses no symlink. The final component of an entry is never resolved here: callers replace
//! whatever is there.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Linux gives up after 40 symlinks in one lookup (ELOOP); so do we.
const MAX_SYMLINKS: usize = 40;

const PARENT: &str = "..";

/// Lexically normalize an entry name into plain components: leading `/` and `.` are dropped
/// (tar's behaviour for absolute names), `..` pops. `None` when a `..` climbs above the root.
/// An empty result names the root itself (`./`).
pub(super) fn normalize(name: &Path) -> Option<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for component in name.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(part) => out.push(part.to_os_string()),
        }
    }
    Some(out)
}

#[derive(Debug)]
pub(super) enum ResolveError {
    /// A component (shown relative to the root) exists and is neither a dir nor a symlink.
    NotADirectory(PathBuf),
    Loop,
    Io(PathBuf, io::Error),
}

/// Resolve `dirs` (normalized components) to a real directory under `root`, following
/// symlinks scoped to `root` and creating missing directories (mode 0755, like tar does for
/// implied parents). Returns the absolute path of that directory.
pub(super) fn resolve_dir(root: &Path, dirs: &[OsString]) -> Result<PathBuf, ResolveError> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = dirs.iter().cloned().collect();
    let mut followed = 0;
    while let Some(part) = pending.pop_front() {
        if part == PARENT {
            // Only symlink targets produce `..` here; at the root it stays at the root.
            resolved.pop();
            continue;
        }
        let here = join(root, &resolved).join(&part);
        match fs::symlink_metadata(&here) {
            Ok(md) if md.is_dir() => resolved.push(part),
            Ok(md) if md.file_type().is_symlink() => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(ResolveError::Loop);
                }
                let target =
                    fs::read_link(&here).map_err(|e| ResolveError::Io(rel(&here, root), e))?;
                if target.has_root() {
                    resolved.clear();
                }
                let mut expanded: VecDeque<OsString> = target_parts(&target).collect();
                expanded.extend(pending.drain(..));
                pending = expanded;
            }
            Ok(_) => return Err(ResolveError::NotADirectory(rel(&here, root))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dir(&here).map_err(|e| ResolveError::Io(rel(&here, root), e))?;
                resolved.push(part);
            }
            Err(e) => return Err(ResolveError::Io(rel(&here, root), e)),
        }
    }
    Ok(join(root, &resolved))
}

/// The components of a symlink target, with `..` kept (as the `PARENT` marker) for the
/// resolver and root / `.` dropped.
fn target_parts(target: &Path) -> impl Iterator<Item = OsString> + '_ {
    target.components().filter_map(|c| match c {
        Component::Normal(part) => Some(part.to_os_string()),
        Component::ParentDir => Some(OsStr::new(PARENT).to_os_string()),
        Component::Prefix(_) | Component::RootDir | Component::CurDir => None,
    })
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

fn rel(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// Create one implied directory with 0755 regardless of the umask.
fn make_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Option<Vec<String>> {
        normalize(Path::new(s))
            .map(|v| v.iter().map(|p| p.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(parts("/etc/x"), Some(vec!["etc".into(), "x".into()]));
        assert_eq!(
            parts("./a//b/./c/"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(parts("a/../b"), Some(vec!["b".into()]));
        assert_eq!(parts("./"), Some(vec![]));
        assert_eq!(parts("../evil"), None);
        assert_eq!(parts("a/../../evil"), None);
        assert_eq!(parts("/../evil"), None);
    }

    #[test]
    fn resolves_symlinks_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/", root.join("top")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("usr/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        fs::write(root.join("file"), b"x").unwrap();
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();

        assert_eq!(
            resolve_dir(&root, &os(&["lib", "x"])).unwrap(),
            root.join("usr/lib/x")
        );
        assert_eq!(
            resolve_dir(&root, &os(&["top", "etc"])).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_dir(&root, &os(&["usr", "up", "z"])).unwrap(),
            root.join("z")
        );
        assert!(matches!(
            resolve_dir(&root, &os(&["loop"])),
            Err(ResolveError::Loop)
        ));
        assert!(matches!(
            resolve_dir(&root, &os(&["file", "x"])),
            Err(ResolveError::NotADirectory(_))
        ));
        assert!(!tmp.path().join("z").exists());
        assert!(root.join("usr/lib/x").is_dir());
    }
}
