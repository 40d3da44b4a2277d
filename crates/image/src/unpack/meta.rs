//! Entry metadata: parsed once from the header and its PAX records, applied by path without
//! following a symlink at the last component.
//!
//! Order matters when applying: owner first (chown clears setuid/setgid bits and
//! `security.capability`), then xattrs, then the mode, then the times (any of the previous
//! steps would bump ctime only, but writing contents bumps mtime so times come last).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;

use super::UnpackError;

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

#[derive(Debug, Clone)]
pub(super) struct Meta {
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: FileTime,
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Self, UnpackError> {
        let invalid = |what: &str, e: io::Error| UnpackError::Invalid {
            path: name.to_string(),
            reason: format!("bad {what} in header: {e}"),
        };
        let id = |what: &str, v: u64| {
            u32::try_from(v).map_err(|_| UnpackError::Invalid {
                path: name.to_string(),
                reason: format!("{what} {v} does not fit in 32 bits"),
            })
        };
        let header = entry.header();
        let mode = header.mode().map_err(|e| invalid("mode", e))? & 0o7777;
        let uid = id("uid", header.uid().map_err(|e| invalid("uid", e))?)?;
        let gid = id("gid", header.gid().map_err(|e| invalid("gid", e))?)?;
        let secs = header.mtime().map_err(|e| invalid("mtime", e))?;
        let mut mtime = FileTime::from_unix_time(i64::try_from(secs).unwrap_or(i64::MAX), 0);

        let mut xattrs = Vec::new();
        let pax = entry
            .pax_extensions()
            .map_err(|e| invalid("PAX records", e))?;
        for record in pax.into_iter().flatten() {
            let record = record.map_err(|e| invalid("PAX record", e))?;
            let key = record.key_bytes();
            if let Some(xattr) = key.strip_prefix(XATTR_PREFIX) {
                xattrs.push((
                    OsStr::from_bytes(xattr).to_os_string(),
                    record.value_bytes().to_vec(),
                ));
            } else if key == b"mtime"
                && let Some(t) = parse_pax_time(record.value_bytes())
            {
                // PAX mtime carries sub-second precision the octal header field lacks.
                mtime = t;
            }
        }
        Ok(Self {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }
}

/// `1700000000.123456789` → FileTime. Negative or malformed values fall back to the header.
fn parse_pax_time(value: &[u8]) -> Option<FileTime> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    if secs < 0 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(FileTime::from_unix_time(secs, nanos))
}

pub(super) fn io_err(
    name: &str,
    op: impl Into<String>,
) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    let op = op.into();
    move |error| UnpackError::Io {
        path: name.to_string(),
        op,
        error,
    }
}

/// lchown, skipped when not root (the kernel would refuse any other owner anyway).
pub(super) fn chown(
    path: &Path,
    meta: &Meta,
    is_root: bool,
    name: &str,
) -> Result<(), UnpackError> {
    if !is_root {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)).map_err(io_err(name, "chown"))
}

/// lsetxattr each PAX xattr. `security.*` ones the kernel refuses (no LSM, no capability) are
/// skipped with a debug log, as are `user.*` on symlinks, which Linux never allows.
pub(super) fn set_xattrs(
    path: &Path,
    meta: &Meta,
    symlink: bool,
    name: &str,
) -> Result<(), UnpackError> {
    for (key, value) in &meta.xattrs {
        let Err(error) = xattr::set(path, key, value) else {
            continue;
        };
        let key_text = key.to_string_lossy();
        let skippable = key_text.starts_with("security.")
            || (symlink
                && key_text.starts_with("user.")
                && error.raw_os_error() == Some(nix::libc::EPERM));
        if skippable {
            tracing::debug!(entry = name, xattr = %key_text, %error, "xattr refused by the kernel, skipped");
            continue;
        }
        return Err(io_err(name, format!("set xattr {key_text}"))(error));
    }
    Ok(())
}

/// chmod by path; only called on entries we just created that are not symlinks.
pub(super) fn chmod(path: &Path, mode: u32, name: &str) -> Result<(), UnpackError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(name, "chmod"))
}

/// Set atime and mtime without following a symlink at `path`.
pub(super) fn set_times(path: &Path, mtime: FileTime, name: &str) -> Result<(), UnpackError> {
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(io_err(name, "set times"))
}

/// Everything but the times and mode for a directory (those wait until its contents exist).
pub(super) fn apply_dir_early(
    path: &Path,
    meta: &Meta,
    is_root: bool,
    name: &str,
) -> Result<(), UnpackError> {
    chown(path, meta, is_root, name)?;
    set_xattrs(path, meta, false, name)
}

/// Full metadata for a non-directory, non-symlink node we just created.
pub(super) fn apply_node(
    path: &Path,
    meta: &Meta,
    is_root: bool,
    name: &str,
) -> Result<(), UnpackError> {
    chown(path, meta, is_root, name)?;
    set_xattrs(path, meta, false, name)?;
    chmod(path, meta.mode, name)?;
    set_times(path, meta.mtime, name)
}

/// Symlinks have no mode of their own on Linux.
pub(super) fn apply_symlink(
    path: &Path,
    meta: &Meta,
    is_root: bool,
    name: &str,
) -> Result<(), UnpackError> {
    chown(path, meta, is_root, name)?;
    set_xattrs(path, meta, true, name)?;
    set_times(path, meta.mtime, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time(b"12"), Some(FileTime::from_unix_time(12, 0)));
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(FileTime::from_unix_time(12, 500_000_000))
        );
        assert_eq!(
            parse_pax_time(b"12.1234567891"),
            Some(FileTime::from_unix_time(12, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"-3"), None);
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
