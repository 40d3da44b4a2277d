//! `RemoveContainer`: stops it first if needed, removes rootfs, runtime state and record.
//! Idempotent: an unknown container is success.

use berth_api::cri::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle;
use crate::error::{runtime_error_status, store_status};

pub async fn handle(
    cri: &Cri,
    req: RemoveContainerRequest,
) -> Result<RemoveContainerResponse, Status> {
    let c = &cri.containers;
    let Some(rec) = c.store.resolve(&req.container_id).map_err(store_status)? else {
        return Ok(RemoveContainerResponse {});
    };
    let lock = c.lock_of(&rec.id).lock_owned().await;
    let Some(mut rec) = c.store.get(&rec.id) else {
        return Ok(RemoveContainerResponse {});
    };
    lifecycle::remove(c, &mut rec)
        .await
        .map_err(runtime_error_status)?;
    drop(lock);
    Ok(RemoveContainerResponse {})
}
