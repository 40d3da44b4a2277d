//! `PodSandboxStats`: CPU, memory, network and process figures of one pod and its
//! containers.

use berth_api::cri::{PodSandboxStatsRequest, PodSandboxStatsResponse};
use tonic::Status;

use crate::error::engine_status;
use crate::{Cri, stats};

pub async fn handle(
    cri: &Cri,
    req: PodSandboxStatsRequest,
) -> Result<PodSandboxStatsResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument(
            "PodSandboxStats: pod_sandbox_id is empty",
        ));
    }
    let pod = cri.engine.pod(&req.pod_sandbox_id).map_err(engine_status)?;
    Ok(PodSandboxStatsResponse {
        stats: stats::pods(cri, vec![pod]).await.pop(),
    })
}
