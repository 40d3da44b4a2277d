//! Reading /proc/self/mountinfo, so cleanup code can tell what is still mounted where
//! before it deletes anything (never recurse into a live mount).

use std::io;
use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields berth needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
}

/// The mounts of this process' mount namespace.
pub fn mounts() -> io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// Mount points at `path` or below it (`path` should be canonical, as the kernel prints
/// canonical paths).
pub fn mounts_under(path: &Path) -> io::Result<Vec<MountEntry>> {
    Ok(mounts()?
        .into_iter()
        .filter(|m| m.mount_point.starts_with(path))
        .collect())
}

/// Whether something is mounted exactly at `path`.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    Ok(mounts()?.iter().any(|m| m.mount_point == path))
}

/// `path` made absolute and free of symlinks when it exists; as given otherwise.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

// Format: id parent major:minor root mount_point options [optional...] - fstype source super
fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let source = right.next().unwrap_or("");
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: fs_type.to_string(),
        source: unescape(source),
    })
}

/// The kernel escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let l =
            "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let m = parse_line(l).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt/a b"));
        assert_eq!(m.fs_type, "ext3");
        assert_eq!(m.source, "/dev/root");
        let l = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        assert_eq!(parse_line(l).unwrap().fs_type, "cgroup2");
        assert!(parse_line("garbage").is_none());
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
    }
}
