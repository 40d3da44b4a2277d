//! The image records berth keeps and the port through which the CRI layer reaches the store.
//! The store itself (registry client, content store, unpacker) lives in `berth-image`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::reference::Reference;

/// A stored image, as the CRI reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<config digest>`, the image id as Docker and containerd give it.
    pub id: Digest,
    /// Full names with tags: `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Full names with the manifest digest: `docker.io/library/busybox@sha256:…`.
    pub repo_digests: Vec<String>,
    /// Bytes of the image's content as pulled: compressed layers, config and manifest.
    pub size: u64,
    /// The `config.User` string of the image, verbatim (e.g. `1000`, `app:app`, ``).
    pub user: String,
    /// Layer diff ids (uncompressed digests), base layer first.
    pub diff_ids: Vec<Digest>,
    /// Snapshot directories usable as overlayfs lower dirs, base layer first.
    pub snapshots: Vec<std::path::PathBuf>,
    /// The raw image config JSON, for verbose status and for building container specs.
    pub config: serde_json::Value,
    /// True for images that garbage collection must keep (e.g. the pause image).
    pub pinned: bool,
}

/// Credentials that come with a pull request (CRI `AuthConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// base64 of `username:password`, as in docker's config.json.
    pub auth: String,
    pub server_address: String,
    /// An OAuth2 refresh token, exchanged at the token endpoint.
    pub identity_token: String,
    /// A bearer token sent to the registry as is.
    pub registry_token: String,
}

impl RegistryAuth {
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.auth.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }
}

/// Byte and inode usage of the image store's filesystem share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub used_bytes: u64,
    pub inodes_used: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error(transparent)]
    InvalidReference(#[from] crate::reference::ReferenceError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("registry {registry} refused the credentials: {message}")]
    Unauthorized { registry: String, message: String },
    #[error("{reference}: not found in registry {registry}: {message}")]
    RemoteNotFound {
        registry: String,
        reference: String,
        message: String,
    },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("content {digest} failed verification: {message}")]
    Verification { digest: String, message: String },
    #[error("{reference}: {message}")]
    Unsupported { reference: String, message: String },
    #[error("image store: {0}")]
    Store(String),
}

/// What a pull is doing, reported as it happens (the Docker API streams it as progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest for our platform is known: the top-level manifest (or index) digest and
    /// the layers' compressed blob digests with their sizes, base layer first.
    Resolved {
        manifest: Digest,
        layers: Vec<(Digest, u64)>,
    },
    /// The layer (by blob digest) was already in the store, unpacked.
    LayerExists(Digest),
    /// The layer's blob is downloaded and verified.
    LayerDownloaded(Digest),
    /// The layer is unpacked: it is ready to use.
    LayerReady(Digest),
}

/// Receives [`PullEvent`]s. Called from the pulling task; must not block.
pub trait PullProgress: Send + Sync {
    fn event(&self, event: PullEvent);
}

/// Ignores every event: a pull nobody watches.
pub struct NoProgress;

impl PullProgress for NoProgress {
    fn event(&self, _event: PullEvent) {}
}

/// One path a container changed (`docker diff`), as dockerd numbers the kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path inside the container.
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

/// A container's writable layer to turn into an image (`docker commit`, a build step).
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The overlay upper dir of the container (or any directory tree to add as a layer);
    /// None: the new image only changes the config (a build's ENV, CMD…: an empty layer in
    /// the history, as dockerd records it).
    pub upper: Option<std::path::PathBuf>,
    /// The image the container runs (its layers come first); None: `FROM scratch`.
    pub parent: Option<Digest>,
    /// The history entry's `created_by`; None: the config's Cmd (what `docker commit`
    /// records).
    pub created_by: Option<String>,
    /// The new image's run config (`config` of the image config: Cmd, Env, …).
    pub config: serde_json::Value,
    /// The container id, recorded as the config's `container`.
    pub container: String,
    pub comment: String,
    pub author: String,
    /// The tag to give the new image, if any.
    pub tag: Option<Reference>,
}

/// A root filesystem tarball to turn into a one-layer image (`docker import`).
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The new image's run config (`config` of the image config).
    pub config: serde_json::Value,
    pub comment: String,
    pub tag: Option<Reference>,
}

/// What a `docker load` brought in: one line per tag, or the id of an untagged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    /// Full names, `docker.io/library/x:1`.
    pub tags: Vec<String>,
}

/// What a push is doing (the Docker API streams it as progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// About to push these layer blobs, base first.
    Preparing(Vec<Digest>),
    /// The registry already had the blob.
    LayerExists(Digest),
    /// The blob was uploaded.
    LayerPushed(Digest),
    /// The manifest is up: its digest and size.
    Pushed { digest: Digest, size: u64 },
}

/// Receives [`PushEvent`]s. Must not block.
pub trait PushProgress: Send + Sync {
    fn event(&self, event: PushEvent);
}

/// Where a tar stream goes (`docker save`, `docker export`): written on a blocking thread.
pub type TarSink = Box<dyn std::io::Write + Send>;
/// Where a tar stream comes from (`docker load`, `docker import`): read on a blocking thread.
pub type TarSource = Box<dyn std::io::Read + Send>;

fn unsupported_op(what: &str) -> ImageError {
    ImageError::Unsupported {
        reference: String::new(),
        message: format!("this image store cannot {what}"),
    }
}

/// The image store as the CRI layer sees it.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Pulls `reference` (or returns at once if its content is already complete) and
    /// records the reference's tag/digest names on it.
    async fn pull(
        &self,
        reference: &Reference,
        auth: Option<RegistryAuth>,
    ) -> Result<Image, ImageError>;
    /// [`ImageStore::pull`], reporting what it does to `progress`. A store that cannot
    /// tell its steps reports none (the default).
    async fn pull_with_progress(
        &self,
        reference: &Reference,
        auth: Option<RegistryAuth>,
        progress: &dyn PullProgress,
    ) -> Result<Image, ImageError> {
        let _ = progress;
        self.pull(reference, auth).await
    }
    /// Gives the image that `source` names (as [`ImageStore::find`] resolves it) the tag
    /// `target` (which must carry a tag and no digest); the tag moves from any image that
    /// held it, and an image left without names is removed. The default refuses: only
    /// stores that keep names can tag.
    async fn tag(&self, source: &str, target: &Reference) -> Result<Image, ImageError> {
        let _ = (source, target);
        Err(ImageError::Unsupported {
            reference: target.to_string(),
            message: "this image store cannot tag images".into(),
        })
    }
    /// The unpacked size in bytes of each of the image's layers, base layer first (what
    /// `docker history` shows). The default refuses, like [`ImageStore::tag`].
    async fn layer_sizes(&self, id: &Digest) -> Result<Vec<u64>, ImageError> {
        Err(ImageError::Unsupported {
            reference: id.to_string(),
            message: "this image store cannot measure layers".into(),
        })
    }
    /// The changes of a container's upper dir over its image's layers (base first). The
    /// default refuses, like [`ImageStore::tag`].
    async fn changes(
        &self,
        upper: &std::path::Path,
        lowers: &[std::path::PathBuf],
    ) -> Result<Vec<Change>, ImageError> {
        let _ = (upper, lowers);
        Err(unsupported_op("compare layers"))
    }
    /// Makes a container's writable layer a new image on top of its image.
    async fn commit(&self, req: CommitRequest) -> Result<Image, ImageError> {
        let _ = req;
        Err(unsupported_op("commit containers"))
    }
    /// Makes a root filesystem tarball (plain or compressed) a one-layer image.
    async fn import(&self, req: ImportRequest, input: TarSource) -> Result<Image, ImageError> {
        let _ = (req, input);
        Err(unsupported_op("import tarballs"))
    }
    /// Writes the named images as one docker-archive tarball to `out`.
    async fn save(&self, names: Vec<String>, out: TarSink) -> Result<(), ImageError> {
        let _ = (names, out);
        Err(unsupported_op("save images"))
    }
    /// Reads a docker-archive (or OCI layout) tarball and records its images.
    async fn load(&self, input: TarSource) -> Result<Vec<LoadedImage>, ImageError> {
        let _ = input;
        Err(unsupported_op("load images"))
    }
    /// Writes a directory tree (a container's mounted root) as a tar stream to `out`.
    async fn export_tree(&self, dir: &std::path::Path, out: TarSink) -> Result<(), ImageError> {
        let _ = (dir, out);
        Err(unsupported_op("export filesystems"))
    }
    /// Pushes the image `reference` names (which must carry a tag) to its registry.
    async fn push(
        &self,
        reference: &Reference,
        auth: Option<RegistryAuth>,
        progress: &dyn PushProgress,
    ) -> Result<(), ImageError> {
        let _ = (reference, auth, progress);
        Err(unsupported_op("push images"))
    }
    /// Checks credentials against their `server_address` registry (`docker login`): Ok
    /// when it accepts them, `Unauthorized` with the registry's message when not.
    async fn login(&self, auth: RegistryAuth) -> Result<(), ImageError> {
        let _ = auth;
        Err(unsupported_op("log in to registries"))
    }
    /// All images, in a stable order.
    fn list(&self) -> Vec<Image>;
    /// Finds an image by id (`sha256:…`, full or unambiguous hex prefix), by name
    /// (`busybox`, `host/x:tag`, normalised like a pull reference) or by `name@digest`.
    fn find(&self, name: &str) -> Option<Image>;
    /// Removes a name. When `name` is an id or the last name of an image, the image goes
    /// and its content and snapshots are collected once nothing else references them.
    /// Removing something that is not there is not an error (CRI: idempotent).
    async fn remove(&self, name: &str) -> Result<(), ImageError>;
    /// Real byte and inode usage of the image store.
    fn fs_usage(&self) -> Result<FsUsage, ImageError>;
    /// The directory the store keeps its data under (for ImageFsInfo's mountpoint).
    fn root(&self) -> std::path::PathBuf;
}
