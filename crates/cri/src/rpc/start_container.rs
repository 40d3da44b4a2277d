//! `StartContainer`: lets a created container exec its program.

use berth_api::cri::{StartContainerRequest, StartContainerResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;

pub async fn handle(
    cri: &Cri,
    req: StartContainerRequest,
) -> Result<StartContainerResponse, Status> {
    cri.engine
        .start_container(&req.container_id)
        .await
        .map_err(engine_status)?;
    Ok(StartContainerResponse {})
}
