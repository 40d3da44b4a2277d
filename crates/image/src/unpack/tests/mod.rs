//! Unpack tests on crafted tars built in memory. Malicious names that `tar::Builder` refuses
//! are written straight into the header bytes.

mod basic;
mod security;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header};

use super::{Compression, UnpackError, UnpackedLayer, unpack_layer};

pub(super) const MTIME: u64 = 1_600_000_000;

/// Skip (pass) a test that needs root: chown, mknod, `trusted.*` xattrs.
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}
pub(super) use require_root;

pub(super) struct Tar {
    builder: Builder<Vec<u8>>,
}

impl Tar {
    pub fn new() -> Self {
        Self {
            builder: Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, mode: u32, size: usize) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size as u64);
        h
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.file_owned(path, mode, (0, 0), MTIME, data)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u64, u64),
        mtime: u64,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(EntryType::Regular, mode, data.len());
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(mtime);
        self.builder.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_at(path, mode, MTIME)
    }

    pub fn dir_at(&mut self, path: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut h = Self::header(EntryType::Directory, mode, 0);
        h.set_mtime(mtime);
        self.builder.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(EntryType::Link, 0o644, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn node(&mut self, path: &str, kind: EntryType, mode: u32, dev: (u32, u32)) -> &mut Self {
        let mut h = Self::header(kind, mode, 0);
        h.set_device_major(dev.0).unwrap();
        h.set_device_minor(dev.1).unwrap();
        self.builder.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An entry whose name and link name bytes go into the header unchecked.
    pub fn raw(&mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = Self::header(kind, 0o644, data.len());
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// A scratch area: `outer/` holds `dest/`, so escapes show up as files in `outer`.
pub(super) struct Scratch {
    _tmp: tempfile::TempDir,
    pub outer: PathBuf,
    pub dest: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().to_path_buf();
        let dest = outer.join("dest");
        fs::create_dir(&dest).unwrap();
        Self {
            _tmp: tmp,
            outer,
            dest,
        }
    }

    pub fn unpack(&self, tar: Tar) -> Result<UnpackedLayer, UnpackError> {
        let bytes = tar.finish();
        unpack_layer(&bytes[..], Compression::None, &self.dest)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }
}

pub(super) fn lstat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

pub(super) fn mode(path: &Path) -> u32 {
    lstat(path).mode() & 0o7777
}
