//! berth's pod and container lifecycle, shared by its front doors (`berth-cri` for the
//! kubelet and crictl, the Docker Engine API for docker clients). A front door converts its
//! own requests into core types ([`PodSpec`], [`ContainerSpec`], core's `ContainerConfig`),
//! calls an [`Engine`] method and converts the records it gets back; it never sees how a pod
//! is built or undone. The front doors never import each other, and this crate knows neither
//! protocol: no protobuf, no tonic, no HTTP.
//!
//! What lives here: the record stores on disk (`records.rs`), name reservation and the
//! "answer lost, retry gets it once" rule (`delivery.rs`), pods (`pods/`: run as a
//! transaction with rollback, stop, remove, recovery after a restart), containers
//! (`containers/`: create with rollback, start, stop, remove, exit tracking, recovery),
//! a pod with one container made in one step, as a Docker container is (`single.rs`),
//! lifecycle events (`events.rs`), usage figures (`stats.rs`) and the census for metrics
//! (`census.rs`). The side effects go through `berth-core`'s ports; berthd injects the real
//! ones.
//!
//! Entry points, all on [`Engine`] (ids are full ids or unique prefixes):
//! - open and recover after a restart: [`Engine::open`];
//! - pods: `run_pod`, `stop_pod`, `remove_pod`, `pod`, `list_pods`;
//! - containers: `create_container`, `start_container`, `stop_container`,
//!   `remove_container`, `container`, `container_status` (synced with the runtime),
//!   `list_containers`, `update_resources`, `reopen_log`, `container_pid`;
//! - one step for a Docker container: `create_single` (pod + container, undone together);
//! - named networks: `connect_network`, `disconnect_network` (a pod's record lists its
//!   networks; `PodSpec::net` picks them, or another pod's network namespace to join);
//! - what Docker adds (`containers/control.rs`, `containers/wait.rs`): `start_container`
//!   again after an exit and `restart_container` (containers with a restart policy),
//!   `kill_container`, `pause_container`, `unpause_container`, `rename_container`,
//!   `wait_container`; restart policies are applied by one supervisor task
//!   (`supervisor.rs`);
//! - `events().subscribe()`, `container_usage`, `pod_usage`, `census`, `leftovers`.
//!
//! Errors are one [`EngineError`]; its [`ErrorKind`] is what a front door maps to a code.

pub mod census;
pub mod containers;
mod delivery;
mod error;
pub mod events;
pub mod pods;
mod records;
mod single;
pub mod stats;
mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::config::Config;
use berth_core::handler_features::HandlerFeatures;
use berth_core::image::ImageStore;

pub use berth_core::container::restart::RestartPolicy;
pub use containers::create::ContainerSpec;
pub use containers::wait::WaitCondition;
pub use containers::{ContainerPorts, Containers};
pub use error::{EngineError, ErrorKind};
pub use events::{Event, EventKind, Events, Subject};
pub use pods::run::PodSpec;
pub use pods::{PodPorts, Pods};
pub use records::{ContainerStore, PodStore, StoreError};
pub use single::Single;

/// Facts about this runtime: its version, its configuration and what each handler can do.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub version: String,
    pub config: Config,
    /// What each handler can do, by name ("" and "berth" are berth's own runtime); a
    /// handler missing here supports none of the optional features.
    pub handler_features: BTreeMap<String, HandlerFeatures>,
}

impl RuntimeInfo {
    pub fn features_of(&self, handler: &str) -> HandlerFeatures {
        let name = if handler.is_empty() { "berth" } else { handler };
        self.handler_features.get(name).copied().unwrap_or_default()
    }
}

/// The node's pods and containers, and the ports that act on them.
pub struct Engine {
    pub images: Arc<dyn ImageStore>,
    pub info: RuntimeInfo,
    pub pods: Pods,
    pub containers: Containers,
    /// Pull totals for berthd's metrics (every front door's pulls count).
    pub pulls: census::PullCounters,
    /// The previous stats sample per container and pod.
    pub samples: stats::Samples,
    /// Follows exits as they happen and applies restart policies (one task).
    supervisor: supervisor::Supervisor,
}

impl Engine {
    /// Opens the pod and container stores under `root_dir` and reconciles them with the node
    /// (what a crash interrupted is finished or undone; exits seen while berthd was down
    /// are recorded).
    pub async fn open(
        images: Arc<dyn ImageStore>,
        ports: PodPorts,
        container_ports: ContainerPorts,
        info: RuntimeInfo,
        fault_inject: Option<String>,
    ) -> Result<Arc<Self>, StoreError> {
        let (store, unreadable) = PodStore::open(&info.config.root_dir.join("pods"))?;
        for e in unreadable {
            tracing::error!(error = %e, "skipping a pod record");
        }
        let pods = Pods::new(
            store,
            ports,
            info.config.run_dir.join("pods"),
            info.config.runtime.pod_shm_size,
            fault_inject,
        );
        let (cstore, unreadable) =
            ContainerStore::open(&info.config.root_dir.join("containers-meta"))?;
        for e in unreadable {
            tracing::error!(error = %e, "skipping a container record");
        }
        let containers = Containers::new(
            cstore,
            container_ports,
            info.config.root_dir.join("containers"),
            pods.events.clone(),
        );
        // Containers first: a pod is only judged once its containers' exits are known.
        containers::recovery::reconcile(&containers).await;
        pods::recovery::reconcile(&pods).await;
        let engine = Arc::new(Self {
            images,
            info,
            pods,
            containers,
            pulls: Default::default(),
            samples: Default::default(),
            supervisor: Default::default(),
        });
        containers::watch::spawn(Arc::downgrade(&engine));
        supervisor::Supervisor::spawn(&engine);
        Ok(engine)
    }

    /// Lifecycle events of every pod and container, as they happen.
    pub fn events(&self) -> &Events {
        &self.pods.events
    }
}
