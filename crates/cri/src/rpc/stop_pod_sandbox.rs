//! `StopPodSandbox`: disconnects the pod and marks it NotReady; the record stays.
//! Idempotent; an unknown pod is success (all its resources are already reclaimed).

use berth_api::cri::{ContainerEventType, StopPodSandboxRequest, StopPodSandboxResponse};
use berth_core::pod::record::PodState;
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle;
use crate::error::{pod_error_status, runtime_error_status, store_status};
use crate::pods::teardown::stop_network;

pub async fn handle(
    cri: &Cri,
    req: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    let pods = &cri.pods;
    let Some((_lock, mut rec)) = pods.locked("StopPodSandbox", &req.pod_sandbox_id).await? else {
        return Ok(StopPodSandboxResponse {});
    };
    lifecycle::stop_pod_containers(&cri.containers, &rec.id)
        .await
        .map_err(runtime_error_status)?;
    stop_network(pods, &rec).await.map_err(pod_error_status)?;
    if rec.state != PodState::NotReady {
        rec.transition(PodState::NotReady)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        pods.store.put(&rec).map_err(store_status)?;
        let store = &cri.containers.store;
        pods.events
            .pod(ContainerEventType::ContainerStoppedEvent, &rec, || {
                crate::events::statuses(&rec.id, store)
            });
    }
    Ok(StopPodSandboxResponse {})
}
