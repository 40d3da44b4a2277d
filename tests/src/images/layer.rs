//! Building layer tarballs in memory, deterministically (fixed mtime, uid 0), so the same
//! recipe always yields the same digests and built layouts can be cached.

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};
use std::io::Write;

/// The mtime of every entry: a fixed instant keeps digests stable across builds.
const MTIME: u64 = 1_700_000_000;

/// How a layer blob is compressed (and so which OCI media type it gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
        uid: u64,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// A layer under construction: entries are written in the order they are added.
#[derive(Default)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
}

/// A finished layer: the compressed blob and the digest of its uncompressed tar.
pub struct Layer {
    pub blob: Vec<u8>,
    pub diff_id: String,
    pub media_type: &'static str,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
        self
    }

    pub fn file(self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        self.file_owned(path, mode, data, 0)
    }

    /// A file owned by `uid`:`uid`.
    pub fn file_owned(mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>, uid: u64) -> Self {
        self.entries.push(Entry::File {
            path: path.into(),
            mode,
            data: data.into(),
            uid,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// The uncompressed tar stream.
    pub fn tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(MTIME);
            h.set_uid(0);
            h.set_gid(0);
            match e {
                Entry::Dir { path, mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{}/", path.trim_end_matches('/')), &[][..])
                        .with_context(|| format!("tar dir {path}"))?;
                }
                Entry::File {
                    path,
                    mode,
                    data,
                    uid,
                } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_uid(*uid);
                    h.set_gid(*uid);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, &data[..])
                        .with_context(|| format!("tar file {path}"))?;
                }
                Entry::Symlink { path, target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                        .with_context(|| format!("tar symlink {path}"))?;
                }
            }
        }
        b.into_inner().context("finish tar")
    }

    /// Tars and compresses the layer.
    pub fn build(&self, compression: Compression) -> Result<Layer> {
        let tar = self.tar()?;
        let diff_id = sha256_digest(&tar);
        let blob = match compression {
            Compression::None => tar,
            Compression::Gzip => {
                // Fast level: the big image's random layers do not compress anyway.
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&tar).context("gzip layer")?;
                enc.finish().context("gzip layer")?
            }
            Compression::Zstd => zstd::encode_all(&tar[..], 3).context("zstd layer")?,
        };
        Ok(Layer {
            blob,
            diff_id,
            media_type: compression.media_type(),
        })
    }
}

/// `len` bytes from a seeded xorshift generator: incompressible yet reproducible.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
