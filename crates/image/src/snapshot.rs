//! Layer snapshots: each layer unpacked alone into `snapshots/<chain id hex>/fs`, a
//! directory usable as an overlayfs lower dir. A snapshot is built in
//! `snapshots/tmp-<unique>/fs` and renamed into place only once complete and verified.

use std::path::{Path, PathBuf};

use berth_core::Digest;
use berth_core::image::ImageError;
use sha2::{Digest as _, Sha256};

use crate::content::{io_error, sync_dir, unique_name};
use crate::manifest::LayerCompression;
use crate::unpack::{self, Compression};

/// Chain ids per the OCI image spec: chainid(L0) = diffid(L0),
/// chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => {
                let mut h = Sha256::new();
                h.update(format!("{prev} {d}").as_bytes());
                Digest::from_sha256(h.finalize().into())
            }
        };
        out.push(next);
    }
    out
}

pub fn snapshots_dir(root: &Path) -> PathBuf {
    root.join("snapshots")
}

pub fn snapshot_dir(root: &Path, chain: &Digest) -> PathBuf {
    snapshots_dir(root).join(chain.hex())
}

/// The lower dir handed to overlayfs.
pub fn fs_dir(root: &Path, chain: &Digest) -> PathBuf {
    snapshot_dir(root, chain).join("fs")
}

pub fn exists(root: &Path, chain: &Digest) -> bool {
    fs_dir(root, chain).is_dir()
}

/// Removes a half-built snapshot unless disarmed.
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Unpacks `blob` into the snapshot for `chain`, checking the uncompressed digest against
/// `diff_id`. Blocking: run it on a blocking thread.
pub fn build(
    root: &Path,
    blob: &Path,
    compression: LayerCompression,
    diff_id: &Digest,
    chain: &Digest,
) -> Result<(), ImageError> {
    if exists(root, chain) {
        return Ok(());
    }
    let dir = snapshots_dir(root);
    let tmp = TempDir {
        path: dir.join(unique_name("tmp")),
        armed: true,
    };
    let fs = tmp.path.join("fs");
    std::fs::create_dir_all(&fs).map_err(|e| io_error("creating", &fs, e))?;
    let file = std::fs::File::open(blob).map_err(|e| io_error("opening layer", blob, e))?;
    let compression = match compression {
        LayerCompression::None => Compression::None,
        LayerCompression::Gzip => Compression::Gzip,
        LayerCompression::Zstd => Compression::Zstd,
    };
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let unpacked = unpack::unpack_layer(reader, compression, &fs).map_err(|e| {
        ImageError::Store(format!(
            "unpacking layer {diff_id} ({}): {e}",
            blob.display()
        ))
    })?;
    if unpacked.diff_id != *diff_id {
        return Err(ImageError::Verification {
            digest: diff_id.to_string(),
            message: format!(
                "layer {} uncompresses to {} ({} bytes), but the image config lists diff id {diff_id}",
                blob.display(),
                unpacked.diff_id,
                unpacked.size
            ),
        });
    }
    // Flush every unpacked file and directory before the rename makes the snapshot
    // visible: after a crash, a snapshot under its final name must be complete. Only our
    // own inodes: a syncfs() here would make the pull wait for every other writer's dirty
    // data on the filesystem.
    crate::durable::sync_tree(&tmp.path)?;
    let mut tmp = tmp;
    let dest = snapshot_dir(root, chain);
    match std::fs::rename(&tmp.path, &dest) {
        Ok(()) => tmp.armed = false,
        // Someone else completed the same snapshot first: theirs is as good as ours.
        Err(_) if exists(root, chain) => return Ok(()),
        Err(e) => return Err(io_error("renaming snapshot to", &dest, e)),
    }
    sync_dir(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = Digest::of(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], Digest::of(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
        // A prefix of the layers has the same chain ids: that is what lets images share.
        assert_eq!(chain_ids(&[a.clone(), b.clone()]), ids[..2].to_vec());
    }
}
