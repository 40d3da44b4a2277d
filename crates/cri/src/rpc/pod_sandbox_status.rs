//! `PodSandboxStatus`: state, times, IPs, namespace options, labels; verbose info.

use std::collections::HashMap;

use berth_api::cri::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use tonic::Status;

use crate::Cri;
use crate::error::engine_status;
use crate::pods::convert;

pub fn handle(cri: &Cri, req: PodSandboxStatusRequest) -> Result<PodSandboxStatusResponse, Status> {
    let rec = cri.engine.pod(&req.pod_sandbox_id).map_err(engine_status)?;
    let mut info = HashMap::new();
    if req.verbose {
        let v = serde_json::json!({
            "id": rec.id,
            "state": rec.state,
            "hostname": rec.hostname,
            "dir": rec.dir,
            "namespaces": rec.namespaces,
            "pid": rec.namespaces.init_pid,
            "cgroup": rec.cgroup,
            "portMappings": rec.port_mappings,
            "sysctls": rec.sysctls,
            "runtimeHandler": rec.runtime_handler,
            "config": rec.config,
        });
        info.insert("info".to_string(), v.to_string());
    }
    Ok(PodSandboxStatusResponse {
        status: Some(convert::status(&rec)),
        info,
        containers_statuses: Vec::new(),
        timestamp: 0,
    })
}
