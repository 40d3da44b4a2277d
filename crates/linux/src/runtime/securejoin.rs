//! Resolving a container path inside the rootfs, symlinks included, without ever leaving
//! it (like Go's filepath-securejoin): `..` stops at the root and absolute symlink targets
//! restart at the root. The rootfs is not running yet, so nothing races the walk.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::error::{InitError, Result};

const MAX_LINKS: usize = 255;

/// `root` + `unsafe_path`, with every symlink on the way resolved scoped to `root`.
/// Components that do not exist are kept as they are.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    // Components still to walk, last first.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, unsafe_path);
    let mut cur = PathBuf::new(); // relative to root, symlink-free
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&part);
        let full = root.join(&next);
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(InitError::new(
                        "resolve path",
                        format!("{}: too many symlinks", unsafe_path.display()),
                    ));
                }
                let target = std::fs::read_link(&full).map_err(|e| {
                    InitError::new("resolve path", format!("{}: {e}", full.display()))
                })?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                push_components(&mut todo, &target);
            }
            _ => cur = next,
        }
    }
    Ok(root.join(cur))
}

/// Pushes `p`'s normal and `..` components so that the first is popped first.
fn push_components(todo: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("real/up")).unwrap();
        symlink("dir", root.join("real/rel")).unwrap();
        let j = |p: &str| secure_join(root, Path::new(p)).unwrap();
        assert_eq!(j("/abs/dir/x"), root.join("real/dir/x"));
        assert_eq!(j("/real/up/passwd"), root.join("etc/passwd"));
        assert_eq!(j("/real/rel"), root.join("real/dir"));
        assert_eq!(j("/../../x"), root.join("x"));
        symlink("loop", root.join("loop")).unwrap();
        assert!(secure_join(root, Path::new("/loop")).is_err());
    }
}
