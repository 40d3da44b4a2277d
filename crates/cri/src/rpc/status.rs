//! `Status`: truthful runtime and network conditions.

use std::collections::HashMap;

use berth_api::cri::{
    RuntimeCondition, RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus,
    StatusRequest, StatusResponse,
};
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
        match cri.pods.ports.network.ready() {
            Ok(()) => RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
            Err(why) => RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: why,
            },
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
        // The default handler ("") and every configured one, each with what it can do.
        runtime_handlers: std::iter::once(String::new())
            .chain(cri.info.config.runtime.handlers.iter().cloned())
            .map(|name| {
                let f = cri.info.features_of(&name);
                RuntimeHandler {
                    name,
                    features: Some(RuntimeHandlerFeatures {
                        recursive_read_only_mounts: f.recursive_read_only_mounts,
                        user_namespaces: f.user_namespaces,
                    }),
                }
            })
            .collect(),
        // SupplementalGroupsPolicy and ContainerStatus.user are berth's own (spec building).
        features: Some(RuntimeFeatures {
            supplemental_groups_policy: true,
        }),
    })
}
