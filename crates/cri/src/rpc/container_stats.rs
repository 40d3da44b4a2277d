//! `ContainerStats`: CPU, memory and writable-layer usage of one container.

use berth_api::cri::{ContainerStatsRequest, ContainerStatsResponse};
use tonic::Status;

use crate::error::engine_status;
use crate::{Cri, stats};

pub async fn handle(
    cri: &Cri,
    req: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument(
            "ContainerStats: container_id is empty",
        ));
    }
    let rec = cri
        .engine
        .containers
        .resolve(&req.container_id)
        .map_err(engine_status)?;
    let stats = stats::containers(cri, vec![rec]).await.pop();
    Ok(ContainerStatsResponse { stats })
}
