//! The CRI gRPC services. `runtime_service.rs` and `image_service.rs` are dispatch tables;
//! each RPC lives in its own file under `rpc/`: it checks what is CRI-specific in the
//! request, converts CRI messages to core types (`pods/convert.rs`, `containers/convert.rs`),
//! calls the [`Engine`] (`berth-engine`: stores, rollback, recovery, shared with the Docker
//! front door) and converts the records back. The one error → `tonic::Status` mapping is in
//! `error.rs`. This crate sees only `berth-core`'s ports; berthd injects the real ones.

pub mod containers;
mod deadline;
mod error;
mod image_service;
pub mod pods;
mod rpc;
mod runtime_service;
pub mod stats;

use std::sync::Arc;

use berth_api::cri::image_service_server::ImageServiceServer;
use berth_api::cri::runtime_service_server::RuntimeServiceServer;
use berth_engine::Engine;

pub use error::{engine_status, image_error_status};

/// Shared state of both services: the engine (pods, containers, images, stats samples).
pub struct Cri {
    pub(crate) engine: Arc<Engine>,
}

/// The RuntimeService half.
#[derive(Clone)]
pub struct RuntimeSvc(pub(crate) Arc<Cri>);

/// The ImageService half.
#[derive(Clone)]
pub struct ImageSvc(pub(crate) Arc<Cri>);

impl Cri {
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self { engine })
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
