//! `StopPodSandbox`: stops the pod's containers, disconnects the pod and marks it NotReady;
//! the record stays. Idempotent; an unknown pod is success.

use berth_api::cri::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;

pub async fn handle(
    cri: &Cri,
    req: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument(
            "StopPodSandbox: pod_sandbox_id is empty",
        ));
    }
    cri.engine
        .stop_pod(&req.pod_sandbox_id)
        .await
        .map_err(engine_status)?;
    Ok(StopPodSandboxResponse {})
}
