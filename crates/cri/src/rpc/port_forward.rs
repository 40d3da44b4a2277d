//! `PortForward`: answers the URL of a streaming session whose connections go to
//! `localhost:PORT` inside the pod's network namespace (the node's for host-network pods).
//! The ports come with each connection, as the kubelet's protocol sends them.

use berth_api::cri::{PortForwardRequest, PortForwardResponse};
use berth_core::pod::record::PodState;
use berth_core::stream::StreamRequest;
use tonic::Status;

use super::stream_common::stream_error_status;
use crate::Cri;
use crate::error::engine_status;

pub fn handle(cri: &Cri, req: PortForwardRequest) -> Result<PortForwardResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument(
            "PortForward: pod_sandbox_id is empty",
        ));
    }
    if let Some(p) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
        return Err(Status::invalid_argument(format!(
            "PortForward: port {p} is out of range 1..=65535"
        )));
    }
    let rec = cri.engine.pod(&req.pod_sandbox_id).map_err(engine_status)?;
    if rec.state != PodState::Ready {
        return Err(Status::failed_precondition(format!(
            "PortForward: pod sandbox {} is not ready ({:?})",
            rec.id, rec.state
        )));
    }
    let url = cri
        .engine
        .containers
        .ports
        .streams
        .register(StreamRequest::PortForward {
            pod_id: rec.id.clone(),
            netns: rec.namespaces.net.clone(),
        })
        .map_err(stream_error_status)?;
    Ok(PortForwardResponse { url })
}
