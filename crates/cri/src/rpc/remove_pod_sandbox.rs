//! `RemovePodSandbox`: releases everything the pod holds and forgets it.
//! Idempotent; an unknown pod is success.

use berth_api::cri::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle;
use crate::error::{pod_error_status, runtime_error_status, store_status};
use crate::pods::teardown::release_all;

pub async fn handle(
    cri: &Cri,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument(
            "RemovePodSandbox: pod_sandbox_id is empty",
        ));
    }
    let pods = &cri.pods;
    let Some(rec) = pods
        .store
        .resolve(&req.pod_sandbox_id)
        .map_err(store_status)?
    else {
        return Ok(RemovePodSandboxResponse {});
    };
    let lock = pods.lock_of(&rec.id).lock_owned().await;
    let Some(rec) = pods.store.get(&rec.id) else {
        return Ok(RemovePodSandboxResponse {});
    };
    lifecycle::remove_pod_containers(&cri.containers, &rec.id)
        .await
        .map_err(runtime_error_status)?;
    release_all(pods, &rec).await.map_err(pod_error_status)?;
    pods.store.delete(&rec.id).map_err(store_status)?;
    drop(lock);
    pods.forget_lock(&rec.id);
    Ok(RemovePodSandboxResponse {})
}
