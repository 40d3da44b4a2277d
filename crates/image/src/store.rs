//! `Store`: the image store berthd uses through `berth_core::image::ImageStore`. Opening
//! it recovers from a crash (temp content deleted, incomplete records dropped, garbage
//! collected); every change to the index is written before it is acted on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_core::Digest;
use berth_core::Reference;
use berth_core::config::Config;
use berth_core::image::{
    Change, CommitRequest, FsUsage, Image, ImageError, ImageStore, ImportRequest, LoadedImage,
    NoProgress, PullProgress, PushProgress, RegistryAuth, TarSink, TarSource,
};
use tokio::sync::Semaphore;

use crate::content::{Content, io_error};
use crate::error::join_error;
use crate::gc::{self, Leases};
use crate::inflight::InFlight;
use crate::platform::{self, PlatformSpec};
use crate::records::{Record, Records};
use crate::registry::RegistryClient;
use crate::snapshot;

pub(crate) struct State {
    pub records: Records,
    pub leases: Leases,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub content: Content,
    pub registry: Arc<RegistryClient>,
    pub platform: PlatformSpec,
    /// Names of the pause image: images carrying one are reported pinned.
    pub pinned_names: Vec<String>,
    /// Layer downloads at once, across all pulls.
    pub downloads: Semaphore,
    pub inflight: Arc<InFlight>,
    pub state: Mutex<State>,
}

/// The image store. Cheap to share: berthd holds it as `Arc<Store>` / `Arc<dyn ImageStore>`.
pub struct Store {
    inner: Arc<Inner>,
}

impl Inner {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn to_image(&self, r: &Record) -> Image {
        Image {
            id: r.id.clone(),
            repo_tags: r.repo_tags.clone(),
            repo_digests: r.repo_digests.clone(),
            size: r.size,
            user: r.user.clone(),
            diff_ids: r.diff_ids.clone(),
            snapshots: r
                .chain_ids
                .iter()
                .map(|c| snapshot::fs_dir(&self.root, c))
                .collect(),
            config: r.config.clone(),
            pinned: r
                .repo_tags
                .iter()
                .chain(&r.repo_digests)
                .any(|n| self.pinned_names.contains(n)),
        }
    }

    /// Applies `change` to the records and persists them; on a write failure the in-memory
    /// records are left as they were. Content no longer referenced is collected when
    /// `change` reports that images were dropped. Blocking.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Records) -> (T, bool),
    ) -> Result<T, ImageError> {
        let doomed;
        let out;
        {
            let mut st = self.lock();
            let mut next = st.records.clone();
            let (value, dropped) = change(&mut next);
            if next != st.records {
                next.save(&self.root)?;
                st.records = next;
            }
            doomed = if dropped {
                gc::sweep(&self.root, &st.records, &st.leases)
            } else {
                Vec::new()
            };
            out = value;
        }
        gc::purge(doomed);
        Ok(out)
    }
}

fn clear_dir(dir: &Path, only_prefix: Option<&str>) -> Result<(), ImageError> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_error("listing", dir, e))?;
    for entry in rd.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        if let Some(p) = only_prefix
            && !name.to_string_lossy().starts_with(p)
        {
            continue;
        }
        let path = entry.path();
        let res = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        res.map_err(|e| io_error("removing leftover", &path, e))?;
    }
    Ok(())
}

/// Crash recovery at open: leftovers of interrupted writes go, records whose content is
/// incomplete are dropped, unreferenced content is collected.
fn recover(root: &Path) -> Result<Records, ImageError> {
    let content = Content::new(root);
    for d in [
        content.blobs_dir(),
        snapshot::snapshots_dir(root),
        content.tmp_dir(),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| io_error("creating", &d, e))?;
    }
    clear_dir(&content.tmp_dir(), None)?;
    clear_dir(&snapshot::snapshots_dir(root), Some("tmp-"))?;
    let mut records = Records::load(root)?;
    let before = records.by_id.len();
    records.by_id.retain(|id, r| {
        let missing_blob = r.blobs.iter().find(|b| !content.has(b));
        let missing_snap = r.chain_ids.iter().find(|c| !snapshot::exists(root, c));
        match (missing_blob, missing_snap) {
            (None, None) => true,
            (b, s) => {
                tracing::warn!(image = %id, names = ?r.repo_tags, missing_blob = ?b, missing_snapshot = ?s,
                    "dropping image whose content is incomplete");
                false
            }
        }
    });
    if records.by_id.len() != before {
        records.save(root)?;
    }
    let doomed = gc::sweep(root, &records, &Leases::default());
    gc::purge(doomed);
    Ok(records)
}

impl Store {
    /// Opens (creating if needed) the store under `cfg.image_dir()`.
    pub async fn open(cfg: &Config) -> Result<Arc<Store>, ImageError> {
        let root = cfg.image_dir();
        let platform = platform::parse(&cfg.image.platform)
            .map_err(|m| ImageError::InvalidArgument(format!("image.platform: {m}")))?;
        let pause: Reference = cfg.image.pause_image.parse()?;
        let mut pinned_names: Vec<String> = pause.tagged_name().into_iter().collect();
        if let Some(d) = pause.digest() {
            pinned_names.push(pause.digested_name(d));
        }
        let r = root.clone();
        let records = tokio::task::spawn_blocking(move || recover(&r))
            .await
            .map_err(|e| join_error("opening the image store", e))??;
        tracing::info!(root = %root.display(), images = records.by_id.len(), "image store opened");
        let inner = Inner {
            content: Content::new(&root),
            registry: Arc::new(RegistryClient::new(cfg)),
            platform,
            pinned_names,
            downloads: Semaphore::new(cfg.image.max_concurrent_downloads.max(1) as usize),
            inflight: Arc::new(InFlight::default()),
            state: Mutex::new(State {
                records,
                leases: Leases::default(),
            }),
            root,
        };
        Ok(Arc::new(Store {
            inner: Arc::new(inner),
        }))
    }
}

#[async_trait]
impl ImageStore for Store {
    async fn pull(
        &self,
        reference: &Reference,
        auth: Option<RegistryAuth>,
    ) -> Result<Image, ImageError> {
        self.pull_with_progress(reference, auth, &NoProgress).await
    }

    async fn pull_with_progress(
        &self,
        reference: &Reference,
        auth: Option<RegistryAuth>,
        progress: &dyn PullProgress,
    ) -> Result<Image, ImageError> {
        let started = std::time::Instant::now();
        let res = self.inner.pull(reference, auth, progress).await;
        match &res {
            Ok(img) => {
                tracing::info!(reference = %reference, id = %img.id, elapsed_ms = started.elapsed().as_millis() as u64, "pulled image")
            }
            Err(e) => tracing::warn!(reference = %reference, error = %e, "pull failed"),
        }
        res
    }

    fn list(&self) -> Vec<Image> {
        let st = self.inner.lock();
        st.records
            .by_id
            .values()
            .map(|r| self.inner.to_image(r))
            .collect()
    }

    fn find(&self, name: &str) -> Option<Image> {
        let st = self.inner.lock();
        let m = st.records.resolve(name).ok().flatten()?;
        st.records.by_id.get(m.id()).map(|r| self.inner.to_image(r))
    }

    async fn remove(&self, name: &str) -> Result<(), ImageError> {
        let inner = self.inner.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            inner.update(|records| match records.resolve(&name) {
                Ok(Some(m)) => {
                    let dropped = records.remove(&m);
                    tracing::info!(name = %name, image = %m.id(), deleted = dropped, "removed image name");
                    (Ok(()), dropped)
                }
                Ok(None) => (Ok(()), false),
                Err(e) => (Err(e), false),
            })?
        })
        .await
        .map_err(|e| join_error("removing an image", e))?
    }

    async fn tag(&self, source: &str, target: &Reference) -> Result<Image, ImageError> {
        let tag = match (target.tagged_name(), target.digest()) {
            (Some(t), None) => t,
            _ => {
                return Err(ImageError::InvalidArgument(format!(
                    "tag target {target} must be name:tag, without a digest"
                )));
            }
        };
        let inner = self.inner.clone();
        let source = source.to_string();
        tokio::task::spawn_blocking(move || {
            inner.update(|records| match records.resolve(&source) {
                Ok(Some(m)) => {
                    let id = m.id().clone();
                    let dropped = records.tag(&id, &tag);
                    for d in &dropped {
                        tracing::info!(image = %d, tag = %tag, "image lost its last name to a tag; deleting it");
                    }
                    tracing::info!(source = %source, image = %id, tag = %tag, "tagged image");
                    let img = records.by_id.get(&id).map(|r| inner.to_image(r));
                    (img.ok_or_else(|| ImageError::NotFound(source.clone())), !dropped.is_empty())
                }
                Ok(None) => (Err(ImageError::NotFound(source.clone())), false),
                Err(e) => (Err(e), false),
            })?
        })
        .await
        .map_err(|e| join_error("tagging an image", e))?
    }

    async fn layer_sizes(&self, id: &Digest) -> Result<Vec<u64>, ImageError> {
        let dirs: Vec<PathBuf> = {
            let st = self.inner.lock();
            let r = st
                .records
                .by_id
                .get(id)
                .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
            r.chain_ids
                .iter()
                .map(|c| snapshot::fs_dir(&self.inner.root, c))
                .collect()
        };
        tokio::task::spawn_blocking(move || {
            dirs.iter()
                .map(|d| crate::usage::content_bytes(d))
                .collect::<Result<Vec<u64>, ImageError>>()
        })
        .await
        .map_err(|e| join_error("measuring layers", e))?
    }

    async fn changes(&self, upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ImageError> {
        let (upper, lowers) = (upper.to_path_buf(), lowers.to_vec());
        tokio::task::spawn_blocking(move || {
            crate::changes::changes(&upper, &lowers).map_err(|e| {
                ImageError::Store(format!(
                    "comparing {} with its layers: {e}",
                    upper.display()
                ))
            })
        })
        .await
        .map_err(|e| join_error("comparing layers", e))?
    }

    async fn login(&self, auth: RegistryAuth) -> Result<(), ImageError> {
        self.inner.registry.login(&auth).await
    }

    async fn commit(&self, req: CommitRequest) -> Result<Image, ImageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.commit(req))
            .await
            .map_err(|e| join_error("committing a container", e))?
    }

    async fn import(&self, req: ImportRequest, input: TarSource) -> Result<Image, ImageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.import(req, input))
            .await
            .map_err(|e| join_error("importing a tarball", e))?
    }

    async fn save(&self, names: Vec<String>, out: TarSink) -> Result<(), ImageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.save(&names, out))
            .await
            .map_err(|e| join_error("saving images", e))?
    }

    async fn load(&self, input: TarSource) -> Result<Vec<LoadedImage>, ImageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.load(input))
            .await
            .map_err(|e| join_error("loading images", e))?
    }

    async fn export_tree(&self, dir: &Path, out: TarSink) -> Result<(), ImageError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            crate::dirtar::write_tree(&dir, crate::dirtar::Whiteouts::Keep, out)
                .and_then(|mut w| std::io::Write::flush(&mut w))
                .map_err(|e| ImageError::Store(format!("exporting {}: {e}", dir.display())))
        })
        .await
        .map_err(|e| join_error("exporting a filesystem", e))?
    }

    async fn push(
        &self,
        reference: &Reference,
        auth: Option<RegistryAuth>,
        progress: &dyn PushProgress,
    ) -> Result<(), ImageError> {
        let res = self.inner.push(reference, auth, progress).await;
        if let Err(e) = &res {
            tracing::warn!(reference = %reference, error = %e, "push failed");
        }
        res
    }

    fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        crate::usage::fs_usage(&self.inner.root)
    }

    fn root(&self) -> PathBuf {
        self.inner.root.clone()
    }
}
