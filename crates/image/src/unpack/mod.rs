//! Layer unpack: decompress an OCI layer, hash the uncompressed tar (its diff id) and write its
//! entries into an empty directory that is then used, as is, as an overlayfs lower dir.
//!
//! Each layer goes into its own directory, so OCI whiteouts are converted to the overlay form
//! (`.wh.x` → char device 0:0 `x`, `.wh..wh..opq` → `trusted.overlay.opaque=y`) instead of
//! being applied to a previous layer.
//!
//! Nothing is ever written outside `dest`: entry names are normalized lexically (a leading `/`
//! is stripped, a `..` that would climb above the root is refused) and parent directories are
//! resolved component by component with `lstat`, following symlinks *scoped to `dest`* the way
//! `filepath-securejoin` / containerd's `fs.RootPath` do (see `path.rs` for why we resolve
//! rather than refuse). The last component of an entry is never followed: an existing entry
//! there is removed and the new one created with `O_EXCL|O_NOFOLLOW` / `mknod` / `symlink`.

mod entry;
mod meta;
mod path;

#[cfg(test)]
mod tests;

use std::io::{self, BufReader, Read};
use std::path::Path;

use berth_core::Digest;
use sha2::{Digest as _, Sha256};

/// How a layer blob is compressed (from its media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What unpacking a layer produced.
#[derive(Debug, Clone)]
pub struct UnpackedLayer {
    /// sha256 of the whole uncompressed tar stream (including its trailing padding).
    pub diff_id: Digest,
    /// Length in bytes of the uncompressed tar stream.
    pub size: u64,
}

/// Why a layer could not be unpacked. Entry-level variants name the tar entry path.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The compressed stream or the tar framing could not be read.
    #[error("reading layer stream: {0}")]
    Stream(io::Error),
    #[error("tar entry {path:?}: path escapes the layer root")]
    PathEscapes { path: String },
    #[error("tar entry {path:?}: hardlink target {target:?} {reason}")]
    BadHardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("tar entry {path:?}: parent component {component:?} is not a directory")]
    NotADirectory { path: String, component: String },
    #[error("tar entry {path:?}: too many symlinks followed while resolving its parent")]
    SymlinkLoop { path: String },
    #[error("tar entry {path:?}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("tar entry {path:?}: {op}: {error}")]
    Io {
        path: String,
        op: String,
        error: io::Error,
    },
}

/// Unpack one layer stream into `dest` (an existing, empty directory) and return its diff id.
/// Blocking: call it from `spawn_blocking`. Meant to run as root (owners, device nodes,
/// `trusted.*` xattrs); as another user ownership is left to the caller's uid.
pub fn unpack_layer<R: Read>(
    reader: R,
    compression: Compression,
    dest: &Path,
) -> Result<UnpackedLayer, UnpackError> {
    let decoded = match compression {
        Compression::None => Decoded::Plain(reader),
        Compression::Gzip => Decoded::Gzip(Box::new(flate2::read::MultiGzDecoder::new(reader))),
        Compression::Zstd => {
            Decoded::Zstd(zstd::stream::read::Decoder::new(reader).map_err(UnpackError::Stream)?)
        }
    };
    let mut archive = tar::Archive::new(HashingReader::new(decoded));
    let mut unpacker = entry::Unpacker::new(dest);
    for item in archive.entries().map_err(UnpackError::Stream)? {
        let mut item = item.map_err(UnpackError::Stream)?;
        unpacker.entry(&mut item)?;
    }
    unpacker.finish()?;

    // tar stops at the end-of-archive blocks; the record padding after them is part of the
    // uncompressed blob too, and the diff id covers every byte.
    let mut hashing = archive.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(UnpackError::Stream)?;
    let (diff_id, size) = hashing.finish();
    Ok(UnpackedLayer { diff_id, size })
}

/// The decompressed layer stream (an enum so `R` needs no `'static` bound).
enum Decoded<R: Read> {
    Plain(R),
    // Boxed: the zlib-rs backend makes the decoder several hundred bytes.
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            Decoded::Gzip(r) => r.read(buf),
            Decoded::Zstd(r) => r.read(buf),
        }
    }
}

/// Hashes and counts every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (Digest, u64) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.size,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}
