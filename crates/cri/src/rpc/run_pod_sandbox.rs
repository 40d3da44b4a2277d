//! `RunPodSandbox`: the CRI config becomes a [`PodSpec`]; the engine runs the pod as a
//! transaction (rollback on failure, the one identical retry after a lost answer).

use std::sync::Arc;

use berth_api::cri::{RunPodSandboxRequest, RunPodSandboxResponse};
use berth_engine::PodSpec;
use tonic::Status;

use crate::Cri;
use crate::error::engine_status_in;
use crate::pods::convert;

pub async fn handle(
    cri: &Arc<Cri>,
    req: RunPodSandboxRequest,
) -> Result<RunPodSandboxResponse, Status> {
    let invalid = |m: String| Status::invalid_argument(format!("RunPodSandbox: {m}"));
    let config = req
        .config
        .ok_or_else(|| invalid("config is missing".into()))?;
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("config.metadata is missing".into()))?;
    if meta.name.is_empty() {
        return Err(invalid("config.metadata.name is empty".into()));
    }
    let linux = config.linux.as_ref();
    let spec = PodSpec {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        attempt: meta.attempt,
        runtime_handler: req.runtime_handler.clone(),
        hostname: config.hostname.clone(),
        log_directory: config.log_directory.clone(),
        labels: convert::sorted(&config.labels),
        annotations: convert::sorted(&config.annotations),
        modes: convert::modes(&config).map_err(invalid)?,
        userns: convert::userns(
            "pod",
            linux
                .and_then(|l| l.security_context.as_ref())
                .and_then(|s| s.namespace_options.as_ref()),
        )
        .map_err(invalid)?,
        port_mappings: convert::port_mappings(&config).map_err(invalid)?,
        dns: convert::dns(&config),
        sysctls: linux
            .map(|l| convert::sorted(&l.sysctls))
            .unwrap_or_default(),
        cgroup_parent: linux.map(|l| l.cgroup_parent.clone()).unwrap_or_default(),
        net: Default::default(),
        config: serde_json::to_value(&config).map_err(|e| Status::internal(e.to_string()))?,
    };
    let id = cri
        .engine
        .run_pod(spec)
        .await
        .map_err(engine_status_in("RunPodSandbox"))?;
    Ok(RunPodSandboxResponse { pod_sandbox_id: id })
}
