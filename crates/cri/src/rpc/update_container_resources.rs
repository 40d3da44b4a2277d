//! `UpdateContainerResources`: new limits applied live and recorded.

use berth_api::cri::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use berth_core::container::CgroupCaps;
use berth_core::container::record::ContainerState;
use tonic::Status;

use crate::Cri;
use crate::containers::convert;
use crate::error::{runtime_error_status, store_status};

pub async fn handle(
    cri: &Cri,
    req: UpdateContainerResourcesRequest,
) -> Result<UpdateContainerResourcesResponse, Status> {
    let c = &cri.containers;
    let rec = c.resolve(&req.container_id)?;
    let Some(linux) = req.linux else {
        return Ok(UpdateContainerResourcesResponse {});
    };
    let _lock = c.lock_of(&rec.id).lock_owned().await;
    let mut rec = c
        .store
        .get(&rec.id)
        .ok_or_else(|| Status::not_found(format!("container {:?} not found", req.container_id)))?;
    let wanted = convert::resources(&linux);
    let oci = berth_core::container::resources::resources(
        &wanted,
        CgroupCaps {
            version: c.ports.cgroup_version,
            swap: true,
            hugetlb: true,
        },
        None,
        Vec::new(),
    )
    .map_err(|e| Status::invalid_argument(format!("UpdateContainerResources: {e}")))?;
    if matches!(rec.state, ContainerState::Created | ContainerState::Running) {
        let json = serde_json::to_value(&oci).map_err(|e| Status::internal(e.to_string()))?;
        c.ports
            .runtime
            .update(&rec.pod_id, &rec.id, &json)
            .await
            .map_err(runtime_error_status)?;
    }
    rec.config.resources = wanted;
    c.store.put(&rec).map_err(store_status)?;
    Ok(UpdateContainerResourcesResponse {})
}
