//! berth's Docker Engine API: the REST API that the docker CLI, docker-compose and the
//! Docker SDKs speak, served over HTTP/1.1 (hyper) on a unix socket and, opt-in, TCP with
//! mutual TLS.
//!
//! API version 1.41 (Debian's docker 20.10 CLI); clients that speak newer versions negotiate
//! down to it through `/_ping`. Like the CRI crate it reaches the machine only through
//! berth-core's ports; berthd injects the real ones. Errors are Docker's JSON
//! `{"message": …}` with the status codes the CLI expects (see [`error`]).
//!
//! Models come from `bollard-stubs` (bollard's, generated from moby's swagger). Its 1.41
//! release is not used: it types `/version`'s component details as `HashMap<(), ()>` (the
//! CLI prints them) and pulls in chrono and serde_with 1. The current release (API 1.53,
//! serde only) is a superset in what matters; where 1.41 clients still read a field that
//! later versions dropped (`VirtualSize`, `Parent`, a pull error's `error`), a small
//! wrapper adds it.

mod auth;
mod build;
mod containers;
mod df;
pub mod error;
mod events;
mod exec;
mod hijack;
mod http;
mod images;
mod names;
mod networks;
mod query;
mod router;
mod server;
mod stdin;
mod system;
mod tarstream;
#[cfg(test)]
mod test_support;
mod volumes;

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::files::ContainerFiles;
use berth_core::image::ImageStore;
use berth_engine::Engine;

pub use server::{Listener, serve};
pub use system::EngineInfo;

/// The newest API version served, and the default for unversioned paths.
pub const API_VERSION: ApiVersion = ApiVersion(1, 41);
/// The oldest API version accepted (what dockerd 20.10 accepts).
pub const MIN_API_VERSION: ApiVersion = ApiVersion(1, 24);

/// An API version as in `/v1.41/...`: (major, minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// What the endpoints work on: the image store, the pods and containers, and facts about
/// this engine.
pub struct DockerApi {
    pub images: Arc<dyn ImageStore>,
    pub engine: EngineInfo,
    /// The pod and container lifecycle shared with the CRI.
    pub runtime: Arc<Engine>,
    /// Where the containers' log directories go (one per container).
    pub log_dir: PathBuf,
    /// Files in and out of containers (`docker cp`).
    pub files: Arc<dyn ContainerFiles>,
    /// The exec instances (`docker exec`), in memory as dockerd keeps them.
    pub(crate) execs: exec::Execs,
    /// What `docker events` reports.
    pub(crate) events: Arc<events::EventBus>,
    /// The volumes, under `<root_dir>/volumes` (`engine.root_dir`).
    pub(crate) volumes: volumes::Volumes,
    /// The named networks' name servers.
    pub(crate) dns: networks::dns::Servers,
}

impl DockerApi {
    /// The API, with its tasks that remove AutoRemove (`--rm`) containers once they exit
    /// and that turn the engine's events into Docker events (so it must be called inside a
    /// tokio runtime).
    pub fn new(
        images: Arc<dyn ImageStore>,
        engine: EngineInfo,
        runtime: Arc<Engine>,
        log_dir: PathBuf,
        files: Arc<dyn ContainerFiles>,
    ) -> Arc<Self> {
        let volumes = volumes::Volumes::new(PathBuf::from(&engine.root_dir).join("volumes"));
        build::clean_stale(&PathBuf::from(&engine.root_dir).join("build"));
        let api = Arc::new(Self {
            images,
            volumes,
            engine,
            runtime,
            log_dir,
            files,
            execs: exec::Execs::default(),
            events: Arc::default(),
            dns: Default::default(),
        });
        events::spawn_translator(&api);
        containers::lifecycle::spawn_auto_remover(&api);
        api.dns.set_api(Arc::downgrade(&api));
        match api.runtime.pods.ports.network.networks() {
            Ok(defs) => defs.iter().for_each(|d| api.dns.start(d)),
            Err(e) => tracing::warn!(error = %e, "listing the named networks: no name servers"),
        }
        api
    }
}
