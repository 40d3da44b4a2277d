//! `RemovePodSandbox`: releases everything the pod holds and forgets it.
//! Idempotent; an unknown pod is success.

use berth_api::cri::{ContainerEventType, RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle;
use crate::error::{pod_error_status, runtime_error_status, store_status};
use crate::pods::teardown::release_all;

pub async fn handle(
    cri: &Cri,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    let pods = &cri.pods;
    let Some((lock, rec)) = pods.locked("RemovePodSandbox", &req.pod_sandbox_id).await? else {
        return Ok(RemovePodSandboxResponse {});
    };
    lifecycle::remove_pod_containers(&cri.containers, &rec.id)
        .await
        .map_err(runtime_error_status)?;
    release_all(pods, &rec).await.map_err(pod_error_status)?;
    pods.store.delete(&rec.id).map_err(store_status)?;
    pods.events
        .pod(ContainerEventType::ContainerDeletedEvent, &rec, Vec::new);
    drop(lock);
    pods.forget_lock(&rec.id);
    Ok(RemovePodSandboxResponse {})
}
