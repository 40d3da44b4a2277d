//! The content store: blobs by digest under `blobs/sha256/<hex>`. A blob is streamed into
//! `tmp/`, hashed and counted on the way, fsynced, and renamed into place only when its
//! digest and size match, so a file under `blobs/` is always complete and verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::Digest;
use berth_core::image::ImageError;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::registry::error_chain;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other writer in this or another process uses at the same time.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:08x}-{n}", std::process::id())
}

pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> ImageError {
    ImageError::Store(format!("{what} {}: {e}", path.display()))
}

/// fsync a directory so a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("syncing directory", dir, e))
}

/// Removes its file on drop unless disarmed: no partial download outlives an error or a
/// cancelled pull.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Content {
    root: PathBuf,
}

impl Content {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    fn verification(d: &Digest, message: String) -> ImageError {
        ImageError::Verification {
            digest: d.to_string(),
            message,
        }
    }

    /// Moves a completed temp file to its blob path and makes both durable.
    fn commit(&self, tmp: &mut TempFile, d: &Digest) -> Result<(), ImageError> {
        let dest = self.blob_path(d);
        std::fs::rename(&tmp.path, &dest).map_err(|e| io_error("storing blob", &dest, e))?;
        tmp.armed = false;
        sync_dir(&self.blobs_dir())
    }

    /// Streams a registry response into the store, verifying `size` and `digest`.
    /// `source` names where the bytes came from, for errors.
    pub async fn write_response(
        &self,
        mut resp: reqwest::Response,
        digest: &Digest,
        size: u64,
        source: &str,
    ) -> Result<(), ImageError> {
        let mut tmp = TempFile {
            path: self
                .tmp_dir()
                .join(unique_name(&format!("blob-{}", &digest.hex()[..12]))),
            armed: true,
        };
        let mut file = tokio::fs::File::create(&tmp.path)
            .await
            .map_err(|e| io_error("creating", &tmp.path, e))?;
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        loop {
            let chunk = resp.chunk().await.map_err(|e| ImageError::Registry {
                registry: source.to_string(),
                message: format!("downloading {digest}: {}", error_chain(&e)),
            })?;
            let Some(chunk) = chunk else { break };
            written += chunk.len() as u64;
            if written > size {
                return Err(Self::verification(
                    digest,
                    format!("{source} sent more than the declared {size} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| io_error("writing", &tmp.path, e))?;
        }
        if written != size {
            return Err(Self::verification(
                digest,
                format!("{source} sent {written} bytes, the manifest declares {size}"),
            ));
        }
        let got = Digest::from_sha256(hasher.finalize().into());
        if got != *digest {
            return Err(Self::verification(
                digest,
                format!("{source} sent content whose digest is {got}"),
            ));
        }
        file.sync_all()
            .await
            .map_err(|e| io_error("syncing", &tmp.path, e))?;
        drop(file);
        self.commit(&mut tmp, digest)
    }

    /// Stores bytes already in memory (manifests), verifying them first.
    pub fn write_bytes(&self, bytes: &[u8], digest: &Digest) -> Result<(), ImageError> {
        if !digest.matches(bytes) {
            return Err(Self::verification(
                digest,
                "content does not match its digest".into(),
            ));
        }
        if self.has(digest) {
            return Ok(());
        }
        let mut tmp = TempFile {
            path: self.tmp_dir().join(unique_name("manifest")),
            armed: true,
        };
        std::fs::write(&tmp.path, bytes)
            .and_then(|_| std::fs::File::open(&tmp.path)?.sync_all())
            .map_err(|e| io_error("writing", &tmp.path, e))?;
        self.commit(&mut tmp, digest)
    }

    /// A fresh path under `tmp/` for a file that [`Content::adopt`] will move into place.
    pub fn temp_path(&self, prefix: &str) -> PathBuf {
        self.tmp_dir().join(unique_name(prefix))
    }

    /// Moves a complete file whose digest the caller computed while writing it into the
    /// store (fsynced first). The file is removed when the blob is already there.
    pub fn adopt(&self, path: &Path, digest: &Digest) -> Result<(), ImageError> {
        let mut tmp = TempFile {
            path: path.to_path_buf(),
            armed: true,
        };
        if self.has(digest) {
            return Ok(());
        }
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error("syncing", path, e))?;
        self.commit(&mut tmp, digest)
    }

    /// Reads a small blob (manifest, config) if present, re-verifying its digest so a
    /// damaged file is refetched instead of trusted. A damaged file is removed.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> Result<Option<Vec<u8>>, ImageError> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > limit => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &path, e)),
        }
        let bytes = std::fs::read(&path).map_err(|e| io_error("reading", &path, e))?;
        if !digest.matches(&bytes) {
            tracing::warn!(%digest, "stored blob is damaged; removing it");
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }
}
