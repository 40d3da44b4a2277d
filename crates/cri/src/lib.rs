//! The CRI gRPC services. `runtime_service.rs` and `image_service.rs` are dispatch tables;
//! each RPC lives in its own file under `rpc/`. The one error → `tonic::Status` mapping is
//! in `error.rs`. This crate sees only `berth-core`'s ports; berthd injects the real ones.

pub mod census;
pub mod containers;
mod delivery;
mod error;
mod events;
mod image_service;
pub mod pods;
mod records;
mod rpc;
mod runtime_service;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::cri::image_service_server::ImageServiceServer;
use berth_api::cri::runtime_service_server::RuntimeServiceServer;
use berth_core::config::Config;
use berth_core::handler_features::HandlerFeatures;
use berth_core::image::ImageStore;
pub use containers::ContainerPorts;
use containers::Containers;
pub use pods::PodPorts;
use pods::Pods;
pub use records::StoreError;
use records::{ContainerStore, PodStore};

pub use error::image_error_status;

/// Facts about this runtime that Version/Status/RuntimeConfig report.
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

/// Shared state of both services.
pub struct Cri {
    pub(crate) images: Arc<dyn ImageStore>,
    pub(crate) info: RuntimeInfo,
    pub(crate) pods: Pods,
    pub(crate) containers: Containers,
    /// The previous stats sample per container and pod.
    pub(crate) samples: stats::Samples,
    /// Pull totals for berthd's metrics.
    pub(crate) pulls: census::PullCounters,
}

/// The RuntimeService half.
#[derive(Clone)]
pub struct RuntimeSvc(pub(crate) Arc<Cri>);

/// The ImageService half.
#[derive(Clone)]
pub struct ImageSvc(pub(crate) Arc<Cri>);

impl Cri {
    /// Opens the pod store under `<root_dir>/pods` and reconciles it with the node.
    pub async fn new(
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
        let cri = Arc::new(Self {
            images,
            info,
            pods,
            containers,
            samples: Default::default(),
            pulls: Default::default(),
        });
        containers::watch::spawn(Arc::downgrade(&cri));
        Ok(cri)
    }

    /// The two tonic services, ready to add to a server.
    pub fn services(
        self: &Arc<Self>,
    ) -> (
        RuntimeServiceServer<RuntimeSvc>,
        ImageServiceServer<ImageSvc>,
    ) {
        // CRI messages (e.g. ListImages on a busy node, ExecSync output) exceed tonic's 4 MiB
        // default; containerd and CRI-O allow 16 MiB.
        const MAX_MSG: usize = 16 << 20;
        (
            RuntimeServiceServer::new(RuntimeSvc(self.clone()))
                .max_decoding_message_size(MAX_MSG)
                .max_encoding_message_size(MAX_MSG),
            ImageServiceServer::new(ImageSvc(self.clone()))
                .max_decoding_message_size(MAX_MSG)
                .max_encoding_message_size(MAX_MSG),
        )
    }
}
