//! COPY and ADD as a tar: the sources from the context laid out at their destination
//! (entries named from `/`), ready for the ContainerFiles port to unpack into the step's
//! root filesystem (which keeps every path inside it). A directory source gives its
//! contents; ADD unpacks a local tar archive (plain or gzip'd) instead of copying it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use super::context::{Context, walk};
use crate::error::ApiError;

/// What one COPY/ADD writes.
pub struct CopyPlan<'a> {
    pub ctx: &'a Context,
    pub sources: Vec<String>,
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

/// Writes the tar to `out`. Blocking.
pub fn write_tar(plan: &CopyPlan<'_>, out: impl Write) -> Result<(), ApiError> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let dest = plan.dest.trim_matches('/').to_string();
    let join = |base: &str, name: &str| {
        if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}/{name}")
        }
    };
    if plan.create_dest && plan.dest_is_dir && !dest.is_empty() {
        dir_entry(&mut b, &dest, plan.owner)?;
    }
    for src in &plan.sources {
        let host = plan.ctx.ctx.join(src);
        let md = std::fs::symlink_metadata(&host).map_err(|e| failed(src, e))?;
        if md.is_dir() {
            let mut below = Vec::new();
            walk(&host, "", &mut below);
            for rel in below {
                let ctx_rel = join(src, &rel);
                if plan.ctx.ignored(&ctx_rel) {
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
            unpack_into(&mut b, &host, &dest, plan.owner)?;
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

/// The entries of the archive at `host`, renamed under `dest`, owners kept unless `owner`.
fn unpack_into<W: Write>(
    b: &mut tar::Builder<W>,
    host: &Path,
    dest: &str,
    owner: Option<(u64, u64)>,
) -> Result<(), ApiError> {
    let f = std::fs::File::open(host).map_err(|e| failed("reading an ADD source", e))?;
    let mut input = BufReader::new(f);
    let gz = input
        .fill_buf()
        .map(|h| h.starts_with(&[0x1f, 0x8b]))
        .map_err(|e| failed("reading an ADD source", e))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let bad = |e: std::io::Error| ApiError::bad_request(format!("ADD: unpacking the archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").trim_start_matches('/');
        if name.is_empty() || name.split('/').any(|c| c == "..") {
            continue;
        }
        let full = if dest.is_empty() {
            name.to_string()
        } else {
            format!("{dest}/{name}")
        };
        let mut h = entry.header().clone();
        if let Some((uid, gid)) = owner {
            h.set_uid(uid);
            h.set_gid(gid);
        }
        let res = match entry.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry.link_name().map_err(bad)?.unwrap_or_default();
                let target: std::path::PathBuf =
                    if entry.header().entry_type() == tar::EntryType::Link {
                        // Hard links are named from the archive's root: under dest too.
                        let t = target.to_string_lossy();
                        let t = t.trim_start_matches("./").trim_start_matches('/');
                        if dest.is_empty() {
                            t.into()
                        } else {
                            format!("{dest}/{t}").into()
                        }
                    } else {
                        target.into_owned()
                    };
                b.append_link(&mut h, &full, &target)
            }
            _ => b.append_data(&mut h, &full, &mut entry),
        };
        res.map_err(|e| failed("writing the copy", e))?;
    }
    Ok(())
}
