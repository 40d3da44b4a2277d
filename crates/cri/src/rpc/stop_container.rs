//! `StopContainer`: stop signal, then SIGKILL after the timeout. Idempotent; an unknown id
//! is success, as for StopPodSandbox: the kubelet retries stops, and a container that is
//! gone is stopped.

use std::time::Duration;

use berth_api::cri::{StopContainerRequest, StopContainerResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle;
use crate::error::{runtime_error_status, store_status};

pub async fn handle(cri: &Cri, req: StopContainerRequest) -> Result<StopContainerResponse, Status> {
    let c = &cri.containers;
    let Some(rec) = c.store.resolve(&req.container_id).map_err(store_status)? else {
        tracing::debug!(container = %req.container_id, "StopContainer: no such container; nothing to stop");
        return Ok(StopContainerResponse {});
    };
    let _lock = c.lock_of(&rec.id).lock_owned().await;
    let Some(mut rec) = c.store.get(&rec.id) else {
        return Ok(StopContainerResponse {});
    };
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    lifecycle::stop(c, &mut rec, timeout)
        .await
        .map_err(runtime_error_status)?;
    Ok(StopContainerResponse {})
}
