//! `StartContainer`: lets a created container exec its program.

use berth_api::cri::{ContainerEventType, StartContainerRequest, StartContainerResponse};
use berth_core::container::record::ContainerState;
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle::now_ns;
use crate::error::{runtime_error_status, store_status};

pub async fn handle(
    cri: &Cri,
    req: StartContainerRequest,
) -> Result<StartContainerResponse, Status> {
    let c = &cri.containers;
    let rec = c.resolve(&req.container_id)?;
    let _lock = c.lock_of(&rec.id).lock_owned().await;
    let mut rec = c
        .store
        .get(&rec.id)
        .ok_or_else(|| Status::not_found(format!("container {:?} not found", req.container_id)))?;
    if rec.state != ContainerState::Created {
        return Err(Status::failed_precondition(format!(
            "container {} is {:?}, not created: it can be started only once",
            rec.id, rec.state
        )));
    }
    match c.ports.runtime.start(&rec.pod_id, &rec.id).await {
        Ok(st) => {
            rec.started_at = st.started_at.unwrap_or_else(now_ns);
            rec.transition(ContainerState::Running)
                .map_err(|e| Status::internal(e.to_string()))?;
            c.store.put(&rec).map_err(store_status)?;
            c.events
                .container(ContainerEventType::ContainerStartedEvent, &rec, &c.store);
            Ok(StartContainerResponse {})
        }
        Err(e) => {
            // The program could not be exec'd: the container is over, as with runc.
            rec.finish(128, now_ns(), false);
            rec.reason = "StartError".into();
            rec.message = e.to_string();
            let _ = c.store.put(&rec);
            c.events
                .container(ContainerEventType::ContainerStoppedEvent, &rec, &c.store);
            Err(runtime_error_status(e))
        }
    }
}
