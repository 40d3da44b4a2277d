//! `UpdateContainerResources`: new limits applied live and recorded.

use berth_api::cri::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::convert;
use crate::error::{engine_status, engine_status_in};

pub async fn handle(
    cri: &Cri,
    req: UpdateContainerResourcesRequest,
) -> Result<UpdateContainerResourcesResponse, Status> {
    cri.engine
        .container(&req.container_id)
        .map_err(engine_status)?;
    let Some(linux) = req.linux else {
        return Ok(UpdateContainerResourcesResponse {});
    };
    cri.engine
        .update_resources(&req.container_id, convert::resources(&linux))
        .await
        .map_err(engine_status_in("UpdateContainerResources"))?;
    Ok(UpdateContainerResourcesResponse {})
}
