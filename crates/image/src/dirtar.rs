//! Writing a directory tree as a tar stream: a container's writable layer (for `docker
//! commit`, overlay whiteouts turned into OCI `.wh.` entries) or a merged root filesystem
//! (`docker export`, written as it is).
//!
//! Entries are written in sorted order, parents first, with owner, mode, mtime, device
//! numbers, hardlinks (by inode) and xattrs (PAX `SCHILY.xattr.*`, overlay's own
//! `trusted.overlay.*` left out). Nothing on another filesystem is entered.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

const OVERLAY_XATTRS: &[u8] = b"trusted.overlay.";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How overlay's own markers in the tree are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// An overlay upper dir: a 0:0 char device becomes `.wh.<name>`, an opaque directory
    /// gets a `.wh..wh..opq` entry (the OCI layer form).
    ToOci,
    /// A merged tree, written as it is.
    Keep,
}

fn err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Writes `root`'s contents (not `root` itself) as tar entries into `out` and finishes the
/// archive. Blocking.
pub fn write_tree<W: Write>(root: &Path, mode: Whiteouts, out: W) -> io::Result<W> {
    let meta = fs::symlink_metadata(root).map_err(|e| err(root, "reading", e))?;
    let mut w = TreeWriter {
        builder: tar::Builder::new(out),
        mode,
        dev: meta.dev(),
        links: HashMap::new(),
    };
    w.builder.follow_symlinks(false);
    w.dir(root, Path::new(""))?;
    w.builder.into_inner()
}

struct TreeWriter<W: Write> {
    builder: tar::Builder<W>,
    mode: Whiteouts,
    dev: u64,
    /// (dev, inode) of files with several links → the name written first.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TreeWriter<W> {
    /// Writes the entries under `dir` (whose archive name is `rel`), sorted by name.
    fn dir(&mut self, dir: &Path, rel: &Path) -> io::Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(|e| err(dir, "listing", e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| err(dir, "listing", e))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = rel.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed while we walk (a running container): not part of the snapshot.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(&path, "reading", e)),
            };
            // The runtime's mount points are not the container's changes (see changes.rs).
            if self.mode == Whiteouts::ToOci
                && crate::changes::is_mount_stub(&Path::new("/").join(&rel), &path, &meta)
            {
                continue;
            }
            self.entry(&path, &rel, &meta)?;
            if meta.is_dir() && meta.dev() == self.dev {
                self.dir(&path, &rel)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &Path, meta: &fs::Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        if self.mode == Whiteouts::ToOci && ft.is_char_device() && meta.rdev() == 0 {
            let name = rel.file_name().unwrap_or_default();
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            let target = rel.with_file_name(wh);
            return self.marker(&target, meta);
        }
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        let mut opaque = false;
        let xattrs = self.xattrs(path, &mut opaque)?;
        if !xattrs.is_empty() {
            let records: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| {
                    (
                        format!("SCHILY.xattr.{}", k.to_string_lossy()),
                        v.as_slice(),
                    )
                })
                .collect();
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            let mut name = rel.as_os_str().to_os_string();
            name.push("/");
            self.builder.append_data(&mut h, name, io::empty())?;
            if opaque && self.mode == Whiteouts::ToOci {
                self.marker(&rel.join(OPAQUE_MARKER), meta)?;
            }
        } else if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = fs::read_link(path).map_err(|e| err(path, "reading link", e))?;
            self.builder.append_link(&mut h, rel, target)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    h.set_entry_type(EntryType::Link);
                    let first = first.clone();
                    return self.builder.append_link(&mut h, rel, first);
                }
                self.links.insert(key, rel.to_path_buf());
            }
            h.set_entry_type(EntryType::Regular);
            let file = match fs::File::open(path) {
                Ok(f) => f,
                Err(e) => return Err(err(path, "opening", e)),
            };
            // The size as opened: a file growing meanwhile is cut, a shrinking one fails
            // (the tar crate checks the count) rather than writing a corrupt archive.
            h.set_size(file.metadata().map_err(|e| err(path, "reading", e))?.len());
            let len = h.size()?;
            self.builder
                .append_data(&mut h, rel, io::Read::take(file, len))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            });
            let rdev = meta.rdev();
            h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
            h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
            self.builder.append_data(&mut h, rel, io::empty())?;
        }
        Ok(())
    }

    /// An empty regular file named `rel` (a whiteout or opaque marker), owned as `meta`.
    fn marker(&mut self, rel: &Path, meta: &fs::Metadata) -> io::Result<()> {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o600);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        self.builder.append_data(&mut h, rel, io::empty())
    }

    /// The xattrs to record; sets `opaque` when overlay marked the directory opaque.
    fn xattrs(&self, path: &Path, opaque: &mut bool) -> io::Result<Vec<(OsString, Vec<u8>)>> {
        let names = match xattr::list(path) {
            Ok(n) => n,
            // Filesystems without xattr support have none to record.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(err(path, "listing xattrs of", e)),
        };
        let mut out = Vec::new();
        for name in names {
            if name.as_bytes().starts_with(OVERLAY_XATTRS) {
                if name == OPAQUE_XATTR
                    && xattr::get(path, &name).ok().flatten().as_deref() == Some(b"y")
                {
                    *opaque = true;
                }
                continue;
            }
            if let Some(v) = xattr::get(path, &name).map_err(|e| err(path, "reading xattr", e))? {
                out.push((name, v));
            }
        }
        Ok(out)
    }
}
