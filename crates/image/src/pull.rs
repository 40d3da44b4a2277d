//! A pull: resolve the reference to a manifest for our platform, fetch the config, fetch
//! and unpack the layers concurrently (shared with other pulls), then record the image.
//! The record is written last, so a listed image is always complete.

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_core::image::{Image, ImageError, PullEvent, PullProgress, RegistryAuth};
use berth_core::{Digest, Reference};

use crate::error::join_error;
use crate::manifest::{self, Descriptor, LayerCompression, Manifest};
use crate::platform;
use crate::records::Record;
use crate::registry::{MAX_MANIFEST_BYTES, Session};
use crate::snapshot;
use crate::store::Inner;

/// Image configs above this are refused (real ones are a few KiB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Index → index → manifest is the deepest nesting followed.
const MAX_INDEX_DEPTH: usize = 3;

/// Content a pull (or a commit, import, load) in progress holds against garbage
/// collection.
pub(crate) struct Lease {
    inner: Arc<Inner>,
    blobs: Vec<Digest>,
    snapshots: Vec<Digest>,
}

impl Lease {
    pub(crate) fn new(inner: &Arc<Inner>) -> Self {
        Self {
            inner: inner.clone(),
            blobs: Vec::new(),
            snapshots: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, blobs: &[Digest], snapshots: &[Digest]) {
        self.inner.lock().leases.acquire(blobs, snapshots);
        self.blobs.extend_from_slice(blobs);
        self.snapshots.extend_from_slice(snapshots);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner
            .lock()
            .leases
            .release(&self.blobs, &self.snapshots);
    }
}

fn verification(d: &Digest, message: String) -> ImageError {
    ImageError::Verification {
        digest: d.to_string(),
        message,
    }
}

impl Inner {
    pub(crate) async fn pull(
        self: &Arc<Self>,
        reference: &Reference,
        auth: Option<RegistryAuth>,
        progress: &dyn PullProgress,
    ) -> Result<Image, ImageError> {
        let refname = reference.to_string();
        let session = self.registry.session(reference, auth)?;
        let mut lease = Lease::new(self);

        // 1. The document the reference names; a tag is always resolved remotely.
        let (top_digest, top_bytes, top_type) = match reference.digest() {
            Some(d) => {
                let (b, t) = self.manifest_by_digest(&session, d, None).await?;
                (d.clone(), b, t)
            }
            None => self.manifest_by_tag(&session, reference).await?,
        };
        lease.add(std::slice::from_ref(&top_digest), &[]);
        self.content.write_bytes(&top_bytes, &top_digest)?;
        let mut blobs = vec![top_digest.clone()];

        // 2. Down the index(es) to the image manifest for our platform.
        let mut doc = manifest::parse(&top_bytes, top_type.as_deref(), &refname)?;
        let mut manifest_len = top_bytes.len() as u64;
        let mut depth = 0;
        let (config, layers) = loop {
            match doc {
                Manifest::Image { config, layers } => break (config, layers),
                Manifest::Index(list) => {
                    depth += 1;
                    if depth > MAX_INDEX_DEPTH {
                        return Err(ImageError::Unsupported {
                            reference: refname,
                            message: "indexes nested too deeply".into(),
                        });
                    }
                    let d = platform::select(&self.platform, &list).ok_or_else(|| {
                        ImageError::Unsupported {
                            reference: refname.clone(),
                            message: format!(
                                "no image for platform {} (the index offers: {})",
                                self.platform,
                                platform::available(&list)
                            ),
                        }
                    })?;
                    let (bytes, ct) = self
                        .manifest_by_digest(&session, &d.digest, Some(d.size))
                        .await?;
                    lease.add(std::slice::from_ref(&d.digest), &[]);
                    self.content.write_bytes(&bytes, &d.digest)?;
                    blobs.push(d.digest.clone());
                    let hint = ct.or_else(|| Some(d.media_type.clone()).filter(|t| !t.is_empty()));
                    manifest_len = bytes.len() as u64;
                    doc = manifest::parse(&bytes, hint.as_deref(), &refname)?;
                }
            }
        };

        // 3. Config: what the layers must uncompress to, and the image's user.
        manifest::check_config_type(&config, &refname)?;
        let kinds = layers
            .iter()
            .map(|l| manifest::layer_compression(l, &refname))
            .collect::<Result<Vec<_>, _>>()?;
        let mut more: Vec<Digest> = vec![config.digest.clone()];
        more.extend(layers.iter().map(|l| l.digest.clone()));
        lease.add(&more, &[]);
        blobs.extend(more);
        let config_bytes = self.config_blob(&session, &config, &refname).await?;
        let (info, config_json) = manifest::parse_config(&config_bytes, &refname)?;
        if info.diff_ids.len() != layers.len() {
            return Err(ImageError::Unsupported {
                reference: refname,
                message: format!(
                    "the manifest lists {} layers but the config lists {} diff ids",
                    layers.len(),
                    info.diff_ids.len()
                ),
            });
        }
        let chains = snapshot::chain_ids(&info.diff_ids);
        lease.add(&[], &chains);
        progress.event(PullEvent::Resolved {
            manifest: top_digest.clone(),
            layers: layers.iter().map(|l| (l.digest.clone(), l.size)).collect(),
        });

        // 4. Layers: download and unpack, all at once (bounded by the download semaphore).
        let jobs = layers.iter().enumerate().map(|(i, l)| {
            self.ensure_layer(
                &session,
                l.clone(),
                kinds[i],
                info.diff_ids[i].clone(),
                chains[i].clone(),
                progress,
            )
        });
        // Wait for every job even after a failure, so no download of this pull is still
        // writing when it returns. Completed layers stay (unreferenced until the next GC),
        // so the kubelet's retry does not download them again.
        for res in futures::future::join_all(jobs).await {
            res?;
        }

        // 5. The record, last.
        let size = manifest_len + config.size + layers.iter().map(|l| l.size).sum::<u64>();
        let record = Record {
            id: config.digest.clone(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            blobs: blobs.into_iter().collect::<BTreeSet<_>>(),
            diff_ids: info.diff_ids,
            chain_ids: chains,
            size,
            user: info.user,
            config: config_json,
        };
        let tags: Vec<String> = reference.tagged_name().into_iter().collect();
        let digests = vec![reference.digested_name(&top_digest)];
        let me = self.clone();
        let id = record.id.clone();
        let image = tokio::task::spawn_blocking(move || {
            me.update(|records| {
                let dropped = records.insert(record, &tags, &digests);
                for d in &dropped {
                    tracing::info!(image = %d, "image lost its last name to a newer pull; deleting it");
                }
                let img = records.by_id.get(&id).map(|r| me.to_image(r));
                (img, !dropped.is_empty())
            })
        })
        .await
        .map_err(|e| join_error("recording the image", e))??;
        drop(lease);
        image.ok_or_else(|| {
            ImageError::Store(format!("{refname}: image vanished while being recorded"))
        })
    }

    /// A manifest by digest: from the store when present (no network), else fetched and
    /// checked against the digest (and the descriptor's size, when known).
    async fn manifest_by_digest(
        &self,
        session: &Session,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(Vec<u8>, Option<String>), ImageError> {
        let content = self.content.clone();
        let d = digest.clone();
        let local =
            tokio::task::spawn_blocking(move || content.read_small(&d, MAX_MANIFEST_BYTES as u64))
                .await
                .map_err(|e| join_error("reading a manifest", e))??;
        if let Some(bytes) = local {
            return Ok((bytes, None));
        }
        let what = format!("fetching manifest {digest}");
        for (i, ep) in session.endpoints().iter().enumerate() {
            match fetch_verified(session, ep, digest, size).await {
                Ok(v) => return Ok(v),
                Err(e) => session.next_or_fail(i, ep, e, &what)?,
            }
        }
        Err(ImageError::Store(format!("{what}: no endpoint")))
    }

    /// Resolves a tag at the registry; the manifest's digest is the hash of what was served.
    async fn manifest_by_tag(
        &self,
        session: &Session,
        reference: &Reference,
    ) -> Result<(Digest, Vec<u8>, Option<String>), ImageError> {
        let tag = reference.manifest_reference();
        let what = format!("resolving {reference}");
        for (i, ep) in session.endpoints().iter().enumerate() {
            match session.fetch_manifest(ep, &tag).await {
                Ok((bytes, ct)) => return Ok((Digest::of(&bytes), bytes, ct)),
                Err(e) => session.next_or_fail(i, ep, e, &what)?,
            }
        }
        Err(ImageError::Store(format!("{what}: no endpoint")))
    }

    async fn config_blob(
        self: &Arc<Self>,
        session: &Session,
        desc: &Descriptor,
        refname: &str,
    ) -> Result<Vec<u8>, ImageError> {
        if desc.size > MAX_CONFIG_BYTES {
            return Err(ImageError::Unsupported {
                reference: refname.to_string(),
                message: format!(
                    "image config is {} bytes, more than {MAX_CONFIG_BYTES}",
                    desc.size
                ),
            });
        }
        for _ in 0..2 {
            if let Some(b) = self.content.read_small(&desc.digest, MAX_CONFIG_BYTES)? {
                return Ok(b);
            }
            self.download(session, desc, false).await?;
        }
        Err(ImageError::Store(format!(
            "config {} vanished after download",
            desc.digest
        )))
    }

    /// Downloads a blob into the store (mirrors first), unless it is already there.
    async fn download(
        &self,
        session: &Session,
        desc: &Descriptor,
        layer: bool,
    ) -> Result<(), ImageError> {
        let _permit = if layer {
            Some(
                self.downloads
                    .acquire()
                    .await
                    .map_err(|e| ImageError::Store(format!("download slots: {e}")))?,
            )
        } else {
            None
        };
        if self.content.has(&desc.digest) {
            return Ok(());
        }
        tracing::debug!(digest = %desc.digest, size = desc.size, "downloading blob");
        let what = format!("downloading {}", desc.digest);
        for (i, ep) in session.endpoints().iter().enumerate() {
            let attempt = async {
                let resp = session.get_blob(ep, &desc.digest).await?;
                self.content
                    .write_response(resp, &desc.digest, desc.size, &ep.describe())
                    .await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) => session.next_or_fail(i, ep, e, &what)?,
            }
        }
        Err(ImageError::Store(format!("{what}: no endpoint")))
    }

    /// The layer's blob and its snapshot, each built once even when pulls race for it.
    async fn ensure_layer(
        self: &Arc<Self>,
        session: &Session,
        desc: Descriptor,
        kind: LayerCompression,
        diff_id: Digest,
        chain: Digest,
        progress: &dyn PullProgress,
    ) -> Result<(), ImageError> {
        if self.content.has(&desc.digest) && snapshot::exists(&self.root, &chain) {
            progress.event(PullEvent::LayerExists(desc.digest.clone()));
            return Ok(());
        }
        if !self.content.has(&desc.digest) {
            let (me, s, d) = (self.clone(), session.clone(), desc.clone());
            self.inflight
                .run(format!("blob:{}", desc.digest.hex()), async move {
                    me.download(&s, &d, true).await
                })
                .await?;
        }
        progress.event(PullEvent::LayerDownloaded(desc.digest.clone()));
        if !snapshot::exists(&self.root, &chain) {
            let root = self.root.clone();
            let blob = self.content.blob_path(&desc.digest);
            let key = format!("snapshot:{}", chain.hex());
            self.inflight
                .run(key, async move {
                    tokio::task::spawn_blocking(move || {
                        snapshot::build(&root, &blob, kind, &diff_id, &chain)
                    })
                    .await
                    .map_err(|e| join_error("unpacking a layer", e))?
                })
                .await?;
        }
        progress.event(PullEvent::LayerReady(desc.digest.clone()));
        Ok(())
    }
}

/// One endpoint's copy of a manifest, checked against its digest and declared size.
async fn fetch_verified(
    session: &Session,
    ep: &crate::registry::endpoint::Endpoint,
    digest: &Digest,
    size: Option<u64>,
) -> Result<(Vec<u8>, Option<String>), ImageError> {
    let (bytes, ct) = session.fetch_manifest(ep, &digest.to_string()).await?;
    if !digest.matches(&bytes) {
        return Err(verification(
            digest,
            format!(
                "{} served a manifest whose digest is {}",
                ep.describe(),
                Digest::of(&bytes)
            ),
        ));
    }
    if let Some(s) = size
        && s != bytes.len() as u64
    {
        return Err(verification(
            digest,
            format!(
                "{} served {} bytes, the index declares {s}",
                ep.describe(),
                bytes.len()
            ),
        ));
    }
    Ok((bytes, ct))
}
