//! `Status`: truthful runtime and network conditions.

use std::collections::HashMap;

use berth_api::cri::{
    RuntimeCondition, RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus,
    StatusRequest, StatusResponse,
};
use tonic::Status;

use crate::Cri;

/// berthd's health for `Status` verbose (and `berth info`): the conditions, what it holds
/// and what it has pulled. Read from memory only: Status must stay instant.
fn health(cri: &Cri, conditions: &[RuntimeCondition]) -> serde_json::Value {
    let c = cri.engine.census();
    let conds: serde_json::Map<String, serde_json::Value> = conditions
        .iter()
        .map(|k| {
            let v =
                serde_json::json!({"status": k.status, "reason": k.reason, "message": k.message});
            (k.r#type.clone(), v)
        })
        .collect();
    serde_json::json!({
        "version": cri.engine.info.version,
        "conditions": conds,
        "pods": c.pods,
        "containers": c.containers,
        "monitors": c.monitors,
        "imagePulls": c.pulls,
        "imagePullFailures": c.pull_failures,
        "cgroupVersion": format!("{:?}", cri.engine.containers.ports.cgroup_version),
    })
}

pub fn handle(cri: &Cri, req: StatusRequest) -> Result<StatusResponse, Status> {
    let conditions = vec![
        RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        match cri.engine.pods.ports.network.ready() {
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
        let config = serde_json::to_string(&cri.engine.info.config)
            .map_err(|e| Status::internal(format!("encoding config: {e}")))?;
        info.insert("config".to_string(), config);
        info.insert("health".to_string(), health(cri, &conditions).to_string());
    }
    Ok(StatusResponse {
        status: Some(RuntimeStatus { conditions }),
        info,
        // The default handler ("") and every configured one, each with what it can do.
        runtime_handlers: std::iter::once(String::new())
            .chain(cri.engine.info.config.runtime.handlers.iter().cloned())
            .map(|name| {
                let f = cri.engine.info.features_of(&name);
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
