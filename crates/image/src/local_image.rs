//! Images made here (commit, import, load): their config and a Docker schema2 manifest are
//! written to the content store, missing snapshots unpacked from the layer blobs, and the
//! record written last, as a pull does. Also: an image's own manifest and layer blobs read
//! back from the store (commit builds on them, save and push send them).

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_core::Digest;
use berth_core::image::{Image, ImageError};
use serde_json::{Value, json};

use crate::layer::StoredLayer;
use crate::manifest::{self, DOCKER_MANIFEST, Manifest};
use crate::pull::Lease;
use crate::records::Record;
use crate::registry::MAX_MANIFEST_BYTES;
use crate::snapshot;
use crate::store::Inner;

pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// An image's manifest as stored: its digest, bytes, and layers with their diff ids.
pub struct StoredManifest {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub layers: Vec<StoredLayer>,
}

/// Now, as image configs write it.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Inner {
    /// The record of `id`, or NotFound.
    pub(crate) fn record(&self, id: &Digest) -> Result<Record, ImageError> {
        self.lock()
            .records
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| ImageError::NotFound(id.to_string()))
    }

    /// The image manifest among the record's blobs (the one whose config is the image).
    /// Blocking.
    pub(crate) fn stored_manifest(&self, rec: &Record) -> Result<StoredManifest, ImageError> {
        for b in &rec.blobs {
            let Some(bytes) = self.content.read_small(b, MAX_MANIFEST_BYTES as u64)? else {
                continue;
            };
            if bytes.first() != Some(&b'{') {
                continue;
            }
            let Ok(Manifest::Image { config, layers }) = manifest::parse(&bytes, None, "") else {
                continue;
            };
            if config.digest != rec.id || layers.len() != rec.diff_ids.len() {
                continue;
            }
            let layers = layers
                .iter()
                .zip(&rec.diff_ids)
                .map(|(l, d)| {
                    Ok(StoredLayer {
                        blob: l.digest.clone(),
                        size: l.size,
                        diff_id: d.clone(),
                        compression: manifest::layer_compression(l, &rec.id.to_string())?,
                    })
                })
                .collect::<Result<Vec<_>, ImageError>>()?;
            return Ok(StoredManifest {
                digest: b.clone(),
                bytes,
                layers,
            });
        }
        Err(ImageError::Store(format!(
            "image {}: its manifest is not in the content store",
            rec.id
        )))
    }

    /// Records an image made of `layers` (blobs already in the store, held by `lease`)
    /// with the config `config_bytes` (whose diff ids must be the layers') under `tags`.
    /// Blocking.
    pub(crate) fn record_local(
        self: &Arc<Self>,
        config_bytes: Vec<u8>,
        layers: &[StoredLayer],
        tags: &[String],
        lease: &mut Lease,
    ) -> Result<Image, ImageError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let (info, config_json) = manifest::parse_config(&config_bytes, "new image")?;
        if info.diff_ids != diff_ids {
            return Err(ImageError::InvalidArgument(format!(
                "the image config lists diff ids {:?} but the layers are {:?}",
                info.diff_ids, diff_ids
            )));
        }
        let config_digest = Digest::of(&config_bytes);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config_bytes.len(), "digest": config_digest},
            "layers": layers.iter().map(|l| json!({
                "mediaType": l.media_type(), "size": l.size, "digest": l.blob,
            })).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::Store(format!("encoding a manifest: {e}")))?;
        let manifest_digest = Digest::of(&manifest_bytes);
        let chains = snapshot::chain_ids(&diff_ids);
        let mut blobs: Vec<Digest> = layers.iter().map(|l| l.blob.clone()).collect();
        blobs.push(config_digest.clone());
        blobs.push(manifest_digest.clone());
        lease.add(&blobs, &chains);
        self.content.write_bytes(&config_bytes, &config_digest)?;
        self.content
            .write_bytes(&manifest_bytes, &manifest_digest)?;
        for (l, chain) in layers.iter().zip(&chains) {
            let blob = self.content.blob_path(&l.blob);
            snapshot::build(&self.root, &blob, l.compression, &l.diff_id, chain)?;
        }
        let size = manifest_bytes.len() as u64
            + config_bytes.len() as u64
            + layers.iter().map(|l| l.size).sum::<u64>();
        let record = Record {
            id: config_digest.clone(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            blobs: blobs.into_iter().collect::<BTreeSet<_>>(),
            diff_ids,
            chain_ids: chains,
            size,
            user: info.user,
            config: config_json,
        };
        let image = self.update(|records| {
            let dropped = records.insert(record, tags, &[]);
            for d in &dropped {
                tracing::info!(image = %d, "image lost its last name to a new image; deleting it");
            }
            let img = records.by_id.get(&config_digest).map(|r| self.to_image(r));
            (img, !dropped.is_empty())
        })?;
        image.ok_or_else(|| ImageError::Store("a new image vanished while being recorded".into()))
    }
}

/// `config` with `rootfs` listing `layers`, encoded.
pub fn with_rootfs(mut config: Value, layers: &[StoredLayer]) -> Result<Vec<u8>, ImageError> {
    let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    serde_json::to_vec(&config)
        .map_err(|e| ImageError::Store(format!("encoding an image config: {e}")))
}

/// A history entry as dockerd writes one.
pub fn history_entry(created: &str, created_by: &str, author: &str, comment: &str) -> Value {
    let mut h = json!({"created": created, "created_by": created_by});
    if !author.is_empty() {
        h["author"] = json!(author);
    }
    if !comment.is_empty() {
        h["comment"] = json!(comment);
    }
    h
}
