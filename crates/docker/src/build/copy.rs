//! COPY and ADD as a tar: the sources (from the context, or for `COPY --from` from
//! another image's files as the ContainerFiles port archived them) laid out at their
//! destination (entries named from `/`), ready for the port to unpack into the step's root
//! filesystem (which keeps every path inside it). A directory source gives its contents;
//! ADD unpacks a local tar archive (plain or gzip'd) instead of copying it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::context::{Ignore, walk};
use crate::error::ApiError;

/// Where one source's files come from.
pub enum Source {
    /// A path in the context directory (relative, `a/b`).
    Context(String),
    /// A tar written by `ContainerFiles::archive` of another image's path: its entries are
    /// named after the path's last component.
    Archive { tar: PathBuf, is_dir: bool },
}

/// What one COPY/ADD writes.
pub struct CopyPlan {
    /// The unpacked context and its `.dockerignore`.
    pub ctx_dir: PathBuf,
    pub ignore: Ignore,
    pub sources: Vec<Source>,
    /// Absolute container path.
    pub dest: String,
    /// The destination is a directory (trailing `/`, several sources, or one in the image).
    pub dest_is_dir: bool,
    /// Whether the destination directory must be created (it is not in the image).
    pub create_dest: bool,
    /// `--chown`, else root.
    pub owner: Option<(u64, u64)>,
    /// ADD: local archives are unpacked.
    pub unpack_archives: bool,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Writes the tar to `out`. Blocking.
pub fn write_tar(plan: &CopyPlan, out: impl Write) -> Result<(), ApiError> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let dest = plan.dest.trim_matches('/').to_string();
    if plan.create_dest && plan.dest_is_dir && !dest.is_empty() {
        dir_entry(&mut b, &dest, plan.owner)?;
    }
    for src in &plan.sources {
        let src = match src {
            Source::Context(s) => s,
            Source::Archive { tar, is_dir } => {
                let f = std::fs::File::open(tar).map_err(|e| failed("reading a copy", e))?;
                let to = if *is_dir {
                    Rename::Contents(dest.clone())
                } else if plan.dest_is_dir {
                    Rename::Under(dest.clone())
                } else {
                    Rename::Replace(dest.clone())
                };
                rewrite(&mut b, Box::new(f), &to, Some(plan.owner.unwrap_or((0, 0))))?;
                continue;
            }
        };
        let host = plan.ctx_dir.join(src);
        let md = std::fs::symlink_metadata(&host).map_err(|e| failed(src, e))?;
        if md.is_dir() {
            let mut below = Vec::new();
            walk(&host, "", &mut below);
            for rel in below {
                if plan.ignore.ignored(&join(src, &rel)) {
                    continue;
                }
                append(&mut b, &host.join(&rel), &join(&dest, &rel), plan.owner)?;
            }
            continue;
        }
        let base = Path::new(src)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if plan.unpack_archives && md.is_file() && is_archive(&host)? {
            let reader = decompressed(&host)?;
            rewrite(&mut b, reader, &Rename::Under(dest.clone()), plan.owner)?;
            continue;
        }
        let name = if plan.dest_is_dir {
            join(&dest, &base)
        } else {
            dest.clone()
        };
        append(&mut b, &host, &name, plan.owner)?;
    }
    b.finish().map_err(|e| failed("writing the copy", e))
}

fn header_for(md: &std::fs::Metadata, owner: Option<(u64, u64)>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(md, tar::HeaderMode::Complete);
    let (uid, gid) = owner.unwrap_or((0, 0));
    h.set_uid(uid);
    h.set_gid(gid);
    h
}

fn dir_entry<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    owner: Option<(u64, u64)>,
) -> Result<(), ApiError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    let (uid, gid) = owner.unwrap_or((0, 0));
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(0);
    b.append_data(&mut h, name, std::io::empty())
        .map_err(|e| failed("writing the copy", e))
}

fn append<W: Write>(
    b: &mut tar::Builder<W>,
    host: &Path,
    name: &str,
    owner: Option<(u64, u64)>,
) -> Result<(), ApiError> {
    let md = std::fs::symlink_metadata(host).map_err(|e| failed(name, e))?;
    let mut h = header_for(&md, owner);
    let res = if md.file_type().is_symlink() {
        let target = std::fs::read_link(host).map_err(|e| failed(name, e))?;
        b.append_link(&mut h, name, target)
    } else if md.is_file() {
        let f = std::fs::File::open(host).map_err(|e| failed(name, e))?;
        b.append_data(&mut h, name, f)
    } else if md.is_dir() {
        b.append_data(&mut h, name, std::io::empty())
    } else {
        // Sockets, fifos and devices in a context are not copied (dockerd skips them too).
        return Ok(());
    };
    res.map_err(|e| failed("writing the copy", e))
}

/// A tar archive, plain or gzip'd (what ADD unpacks).
fn is_archive(path: &Path) -> Result<bool, ApiError> {
    let mut f = std::fs::File::open(path).map_err(|e| failed("reading an ADD source", e))?;
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(failed("reading an ADD source", e)),
        }
    }
    if head[..n].starts_with(&[0x1f, 0x8b]) {
        return Ok(true);
    }
    Ok(n >= 262 && &head[257..262] == b"ustar")
}

fn decompressed(host: &Path) -> Result<Box<dyn Read>, ApiError> {
    let f = std::fs::File::open(host).map_err(|e| failed("reading an ADD source", e))?;
    let mut input = BufReader::new(f);
    let gz = input
        .fill_buf()
        .map(|h| h.starts_with(&[0x1f, 0x8b]))
        .map_err(|e| failed("reading an ADD source", e))?;
    Ok(if gz {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    })
}

/// How an archive's entry names become destination names.
enum Rename {
    /// `x/y` → `dest/x/y` (ADD's unpacking, a file into a directory).
    Under(String),
    /// `base/y` → `dest/y`, `base` itself skipped (a directory's contents).
    Contents(String),
    /// `base` → `dest` (a file to a file name).
    Replace(String),
}

impl Rename {
    fn apply(&self, name: &str) -> Option<String> {
        match self {
            Rename::Under(dest) => Some(join(dest, name)),
            Rename::Contents(dest) => name.split_once('/').map(|(_, rest)| join(dest, rest)),
            Rename::Replace(dest) => Some(dest.clone()),
        }
    }
}

/// The entries of `input` (a tar), renamed, owners replaced by `owner` when given.
fn rewrite<W: Write>(
    b: &mut tar::Builder<W>,
    input: Box<dyn Read>,
    to: &Rename,
    owner: Option<(u64, u64)>,
) -> Result<(), ApiError> {
    let bad = |e: std::io::Error| ApiError::bad_request(format!("unpacking an archive: {e}"));
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").trim_start_matches('/');
        if name.is_empty() || name.split('/').any(|c| c == "..") {
            continue;
        }
        let Some(full) = to.apply(name) else {
            continue;
        };
        let mut h = entry.header().clone();
        if let Some((uid, gid)) = owner {
            h.set_uid(uid);
            h.set_gid(gid);
        }
        let kind = entry.header().entry_type();
        let res = if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            let target: PathBuf = if kind == tar::EntryType::Link {
                // Hard links are named from the archive's root: renamed like the entries.
                let t = target.to_string_lossy();
                match to.apply(t.trim_start_matches("./").trim_start_matches('/')) {
                    Some(t) => t.into(),
                    None => continue,
                }
            } else {
                target.into_owned()
            };
            b.append_link(&mut h, &full, &target)
        } else {
            b.append_data(&mut h, &full, &mut entry)
        };
        res.map_err(|e| failed("writing the copy", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_entries_renamed() {
        let under = Rename::Under("dst".into());
        assert_eq!(under.apply("a/b").as_deref(), Some("dst/a/b"));
        let contents = Rename::Contents("app".into());
        assert_eq!(contents.apply("out").as_deref(), None);
        assert_eq!(contents.apply("out/sub/f").as_deref(), Some("app/sub/f"));
        let replace = Rename::Replace("single".into());
        assert_eq!(replace.apply("top").as_deref(), Some("single"));
        assert_eq!(
            Rename::Under(String::new()).apply("x").as_deref(),
            Some("x")
        );
    }
}
