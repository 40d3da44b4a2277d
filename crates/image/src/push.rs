//! `docker push`: the image's layer blobs (each skipped when the registry has it), its
//! config, then its manifest under the reference's tag, all to the registry itself.

use std::sync::Arc;

use berth_core::Reference;
use berth_core::image::{ImageError, PushEvent, PushProgress, RegistryAuth};

use crate::content::io_error;
use crate::error::join_error;
use crate::local_image::DOCKER_CONFIG;
use crate::manifest::{self, DOCKER_MANIFEST};
use crate::records::Match;
use crate::store::Inner;

impl Inner {
    pub(crate) async fn push(
        self: &Arc<Self>,
        reference: &Reference,
        auth: Option<RegistryAuth>,
        progress: &dyn PushProgress,
    ) -> Result<(), ImageError> {
        let tag = match (reference.tag(), reference.digest()) {
            (Some(t), None) => t.to_string(),
            _ => {
                return Err(ImageError::InvalidArgument(format!(
                    "push {reference}: name a tag, without a digest"
                )));
            }
        };
        let name = reference.to_string();
        let rec = {
            let st = self.lock();
            let id = match st.records.resolve(&name)? {
                Some(m @ Match::Tag(..)) => m.id().clone(),
                _ => return Err(ImageError::NotFound(name.clone())),
            };
            st.records.by_id.get(&id).cloned()
        }
        .ok_or_else(|| ImageError::NotFound(name.clone()))?;
        let me = self.clone();
        let r = rec.clone();
        let stored = tokio::task::spawn_blocking(move || me.stored_manifest(&r))
            .await
            .map_err(|e| join_error("reading a manifest", e))??;
        let session = self.registry.session(reference, auth)?;
        let ep = session.upstream()?.clone();
        progress.event(PushEvent::Preparing(
            stored.layers.iter().map(|l| l.blob.clone()).collect(),
        ));
        let mut blobs: Vec<(berth_core::Digest, bool)> = stored
            .layers
            .iter()
            .map(|l| (l.blob.clone(), true))
            .collect();
        blobs.push((rec.id.clone(), false));
        for (digest, is_layer) in blobs {
            if session.blob_exists(&ep, &digest).await? {
                if is_layer {
                    progress.event(PushEvent::LayerExists(digest));
                }
                continue;
            }
            let path = self.content.blob_path(&digest);
            let len = tokio::fs::metadata(&path)
                .await
                .map_err(|e| io_error("reading blob", &path, e))?
                .len();
            session.upload_blob(&ep, &digest, &path, len).await?;
            tracing::debug!(%digest, "pushed blob");
            if is_layer {
                progress.event(PushEvent::LayerPushed(digest));
            }
        }
        let media_type = match manifest::parse(&stored.bytes, None, &name)? {
            manifest::Manifest::Image { .. } => {
                serde_json::from_slice::<serde_json::Value>(&stored.bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
                    .unwrap_or_else(|| {
                        if stored
                            .bytes
                            .windows(DOCKER_CONFIG.len())
                            .any(|w| w == DOCKER_CONFIG.as_bytes())
                        {
                            DOCKER_MANIFEST.to_string()
                        } else {
                            manifest::OCI_MANIFEST.to_string()
                        }
                    })
            }
            manifest::Manifest::Index(_) => {
                return Err(ImageError::Store(format!(
                    "{name}: stored manifest is an index"
                )));
            }
        };
        let size = stored.bytes.len() as u64;
        session
            .put_manifest(&ep, &tag, &media_type, stored.bytes.into())
            .await?;
        tracing::info!(reference = %name, digest = %stored.digest, "pushed image");
        let digest = stored.digest;
        let repo_digest = reference.digested_name(&digest);
        let id = rec.id.clone();
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.update(|records| {
                if let Some(r) = records.by_id.get_mut(&id)
                    && !r.repo_digests.contains(&repo_digest)
                {
                    r.repo_digests.push(repo_digest);
                }
                ((), false)
            })
        })
        .await
        .map_err(|e| join_error("recording a pushed digest", e))??;
        progress.event(PushEvent::Pushed { digest, size });
        Ok(())
    }
}
