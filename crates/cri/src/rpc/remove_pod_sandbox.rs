//! `RemovePodSandbox`: releases everything the pod holds and forgets it.
//! Idempotent; an unknown pod is success.

use berth_api::cri::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;

pub async fn handle(
    cri: &Cri,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument(
            "RemovePodSandbox: pod_sandbox_id is empty",
        ));
    }
    cri.engine
        .remove_pod(&req.pod_sandbox_id)
        .await
        .map_err(engine_status)?;
    Ok(RemovePodSandboxResponse {})
}
