//! `StopContainer`: stop signal, then SIGKILL after the timeout. Idempotent; an unknown id
//! is success, as for StopPodSandbox.

use std::time::Duration;

use berth_api::cri::{StopContainerRequest, StopContainerResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;

pub async fn handle(cri: &Cri, req: StopContainerRequest) -> Result<StopContainerResponse, Status> {
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    cri.engine
        .stop_container(&req.container_id, timeout)
        .await
        .map_err(engine_status)?;
    Ok(StopContainerResponse {})
}
