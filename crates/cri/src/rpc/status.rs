//! `Status`: truthful runtime and network conditions.

use std::collections::HashMap;

use berth_api::cri::{RuntimeCondition, RuntimeStatus, StatusRequest, StatusResponse};
use tonic::Status;

use crate::Cri;

pub fn handle(cri: &Cri, req: StatusRequest) -> Result<StatusResponse, Status> {
    let conditions = vec![
        RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        // No pod networking exists in this release: say so rather than claim readiness.
        RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkNotConfigured".into(),
            message: "berth does not configure pod networking yet".into(),
        },
    ];
    let mut info = HashMap::new();
    if req.verbose {
        let config = serde_json::to_string(&cri.info.config)
            .map_err(|e| Status::internal(format!("encoding config: {e}")))?;
        info.insert("config".to_string(), config);
    }
    Ok(StatusResponse {
        status: Some(RuntimeStatus { conditions }),
        info,
        runtime_handlers: Vec::new(),
        features: None,
    })
}
