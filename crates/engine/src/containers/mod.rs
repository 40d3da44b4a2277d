//! Containers: the record store, per-container locks, the runtime ports, the lifecycle
//! (`create.rs`; start, stop, remove in `lifecycle.rs`), exit tracking and start-up recovery.

pub mod control;
pub mod create;
pub mod host;
pub mod lifecycle;
pub mod ops;
pub mod process;
pub mod recovery;
pub mod rerun;
pub mod wait;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_core::container::CgroupVersion;
use berth_core::runtime::{ContainerRuntime, Rootfs};
use berth_core::stream::StreamService;

use berth_core::container::record::ContainerRecord;

use crate::EngineError;
use crate::records::ContainerStore;

/// The OS edge as the container lifecycle sees it.
#[derive(Clone)]
pub struct ContainerPorts {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub rootfs: Arc<dyn Rootfs>,
    /// Hands out the URLs of Exec, Attach and PortForward sessions.
    pub streams: Arc<dyn StreamService>,
    /// The node's cgroup version (shapes the spec's resources).
    pub cgroup_version: CgroupVersion,
    /// Reads CPU, memory, disk and network usage.
    pub stats: Arc<dyn berth_core::stats::StatsReader>,
}

pub struct Containers {
    pub store: ContainerStore,
    pub ports: ContainerPorts,
    /// Bundles live in `<root_dir>/containers/<id>`: they hold the writable layer, which
    /// must survive a berthd restart.
    pub bundles: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises name reservation.
    pub names: tokio::sync::Mutex<()>,
    /// Containers whose creation answer never reached the client.
    pub undelivered: crate::delivery::Undelivered,
    /// Lifecycle events (shared with the pods).
    pub events: Arc<crate::events::Events>,
}

impl Containers {
    pub fn new(
        store: ContainerStore,
        ports: ContainerPorts,
        bundles: PathBuf,
        events: Arc<crate::events::Events>,
    ) -> Self {
        Self {
            store,
            ports,
            bundles,
            locks: Mutex::new(HashMap::new()),
            names: tokio::sync::Mutex::new(()),
            undelivered: Default::default(),
            events,
        }
    }

    pub fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    pub fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    /// The container named by `id` (full id or unique prefix), or NotFound.
    pub fn resolve(&self, id: &str) -> Result<ContainerRecord, EngineError> {
        self.store
            .resolve(id)?
            .ok_or_else(|| EngineError::NotFound(format!("container {id:?} not found")))
    }

    pub fn bundle(&self, id: &str) -> PathBuf {
        self.bundles.join(id)
    }
}

/// What the runtime needs to create `rec`'s process (a first create or a run again).
pub(crate) fn create_request(
    rec: &berth_core::container::record::ContainerRecord,
) -> berth_core::runtime::CreateRequest {
    berth_core::runtime::CreateRequest {
        pod_id: rec.pod_id.clone(),
        container_id: rec.id.clone(),
        bundle: rec.bundle.clone(),
        handler: rec.handler.clone(),
        stdio: berth_core::runtime::StdioConfig {
            log_path: rec.log_path.clone(),
            tty: rec.config.tty,
            stdin: rec.config.stdin,
            stdin_once: rec.config.stdin_once,
        },
    }
}
