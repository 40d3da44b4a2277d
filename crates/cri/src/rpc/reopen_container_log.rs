//! `ReopenContainerLog`: the kubelet rotated the log file; start a new one.

use berth_api::cri::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;

pub async fn handle(
    cri: &Cri,
    req: ReopenContainerLogRequest,
) -> Result<ReopenContainerLogResponse, Status> {
    cri.engine
        .reopen_log(&req.container_id)
        .await
        .map_err(engine_status)?;
    Ok(ReopenContainerLogResponse {})
}
