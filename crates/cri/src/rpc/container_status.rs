//! `ContainerStatus`: the record, synced with the runtime first.

use std::collections::HashMap;

use berth_api::cri::{ContainerStatusRequest, ContainerStatusResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::convert;
use crate::error::engine_status;

pub async fn handle(
    cri: &Cri,
    req: ContainerStatusRequest,
) -> Result<ContainerStatusResponse, Status> {
    let c = &cri.engine.containers;
    let rec = cri
        .engine
        .container_status(&req.container_id)
        .await
        .map_err(engine_status)?;
    let mut info = HashMap::new();
    if req.verbose {
        let state = c.ports.runtime.state(&rec.pod_id, &rec.id).await.ok();
        let v = serde_json::json!({
            "id": rec.id,
            "sandboxID": rec.pod_id,
            "pid": state.as_ref().and_then(|s| s.pid),
            "bundle": rec.bundle,
            "handler": rec.handler,
            "config": rec.config,
            "stopSignal": rec.stop_signal,
        });
        info.insert("info".to_string(), v.to_string());
    }
    Ok(ContainerStatusResponse {
        status: Some(convert::status(&rec)),
        info,
    })
}
