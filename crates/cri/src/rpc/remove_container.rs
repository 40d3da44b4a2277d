//! `RemoveContainer`: stops it first if needed, removes rootfs, runtime state and record.
//! Idempotent: an unknown container is success.

use berth_api::cri::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;

pub async fn handle(
    cri: &Cri,
    req: RemoveContainerRequest,
) -> Result<RemoveContainerResponse, Status> {
    cri.engine
        .remove_container(&req.container_id)
        .await
        .map_err(engine_status)?;
    Ok(RemoveContainerResponse {})
}
