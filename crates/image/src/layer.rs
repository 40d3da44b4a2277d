//! Layer blobs made here rather than pulled: a directory written as a gzip tar (`docker
//! commit`), or a tar file from a client (`docker import`, `docker load`) taken as it is.
//! Either way the blob lands in the content store with its digest, size and diff id known.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use berth_core::Digest;
use berth_core::image::ImageError;
use sha2::{Digest as _, Sha256};

use crate::content::{Content, io_error};
use crate::dirtar::{self, Whiteouts};
use crate::manifest::LayerCompression;

pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A layer blob in the content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    pub blob: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub compression: LayerCompression,
}

impl StoredLayer {
    pub fn media_type(&self) -> &'static str {
        match self.compression {
            LayerCompression::Gzip => DOCKER_LAYER_GZIP,
            LayerCompression::None => DOCKER_LAYER,
            LayerCompression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// Hashes and counts what goes through it.
pub struct Hashing<T> {
    pub inner: T,
    hasher: Sha256,
    pub count: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().into())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Writes `dir` as a gzip tar layer (overlay whiteouts in OCI form) into the store. Blocking.
pub fn store_tree(content: &Content, dir: &Path) -> Result<StoredLayer, ImageError> {
    let tmp = content.temp_path("layer");
    let res = (|| -> io::Result<(Digest, u64, Digest)> {
        let file = File::create(&tmp)?;
        let packed = Hashing::new(io::BufWriter::new(file));
        let gz = flate2::write::GzEncoder::new(packed, flate2::Compression::fast());
        let plain = dirtar::write_tree(dir, Whiteouts::ToOci, Hashing::new(gz))?;
        let diff_id = plain.digest();
        let mut packed = plain.inner.finish()?;
        packed.flush()?;
        Ok((packed.digest(), packed.count, diff_id))
    })();
    let (blob, size, diff_id) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error("writing the layer of", dir, e));
        }
    };
    content.adopt(&tmp, &blob)?;
    Ok(StoredLayer {
        blob,
        size,
        diff_id,
        compression: LayerCompression::Gzip,
    })
}

/// The compression a layer file's first bytes show.
fn sniff(path: &Path) -> io::Result<LayerCompression> {
    let mut head = [0u8; 4];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => LayerCompression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => LayerCompression::Zstd,
        _ => LayerCompression::None,
    })
}

/// Moves a layer file (a tar, plain or compressed) into the store as a blob; its diff id is
/// the digest of its uncompressed bytes, which must form a tar archive. Blocking.
pub fn ingest_file(content: &Content, path: &Path, what: &str) -> Result<StoredLayer, ImageError> {
    let bad = |m: String| ImageError::InvalidArgument(format!("{what}: {m}"));
    let compression = sniff(path).map_err(|e| io_error("reading", path, e))?;
    let file = File::open(path).map_err(|e| io_error("reading", path, e))?;
    let mut packed = Hashing::new(BufReader::with_capacity(256 * 1024, file));
    let diff_id = {
        let decoded: Box<dyn Read + '_> = match compression {
            LayerCompression::None => Box::new(&mut packed),
            LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut packed)),
            LayerCompression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(&mut packed)
                    .map_err(|e| bad(format!("not a zstd stream: {e}")))?,
            ),
        };
        let mut plain = Hashing::new(decoded);
        check_tar(&mut plain).map_err(|e| bad(format!("not a tar archive: {e}")))?;
        io::copy(&mut plain, &mut io::sink())
            .map_err(|e| bad(format!("reading the layer: {e}")))?;
        if plain.count == 0 {
            return Err(bad("the archive is empty".into()));
        }
        plain.digest()
    };
    // Whatever follows the compressed stream is still part of the blob.
    io::copy(&mut packed, &mut io::sink()).map_err(|e| io_error("reading", path, e))?;
    let (blob, size) = (packed.digest(), packed.count);
    content.adopt(path, &blob)?;
    Ok(StoredLayer {
        blob,
        size,
        diff_id,
        compression,
    })
}

/// Reads the tar framing through (every header and the numbers the unpacker reads
/// checked), leaving the padding unread: a client's bad tarball is its error, not ours.
fn check_tar<R: Read>(r: &mut R) -> io::Result<()> {
    let mut archive = tar::Archive::new(r);
    for e in archive.entries()? {
        let mut e = e?;
        let h = e.header();
        h.mode()?;
        h.uid()?;
        h.gid()?;
        h.mtime()?;
        io::copy(&mut e, &mut io::sink())?;
    }
    Ok(())
}
