//! `ReopenContainerLog`: the kubelet rotated the log file; start a new one.

use berth_api::cri::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use berth_core::container::record::ContainerState;
use tonic::Status;

use crate::Cri;
use crate::error::runtime_error_status;

pub async fn handle(
    cri: &Cri,
    req: ReopenContainerLogRequest,
) -> Result<ReopenContainerLogResponse, Status> {
    let c = &cri.containers;
    let rec = c.resolve(&req.container_id)?;
    if rec.state != ContainerState::Running {
        return Err(Status::failed_precondition(format!(
            "container {} is not running",
            rec.id
        )));
    }
    c.ports
        .runtime
        .reopen_log(&rec.pod_id, &rec.id)
        .await
        .map_err(runtime_error_status)?;
    Ok(ReopenContainerLogResponse {})
}
