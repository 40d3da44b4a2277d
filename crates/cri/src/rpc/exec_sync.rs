//! `ExecSync`: a command in the container's namespaces and cgroup, with its user and env.

use std::time::Duration;

use berth_api::cri::{ExecSyncRequest, ExecSyncResponse};
use berth_core::container::record::ContainerState;
use berth_core::runtime::ExecRequest;
use tonic::Status;

use crate::Cri;
use crate::error::{engine_status, runtime_error_status};
use berth_engine::containers::process::exec_process;

/// containerd's cap on each of stdout and stderr.
pub const MAX_OUTPUT: usize = 16 << 20;

pub async fn handle(cri: &Cri, req: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("ExecSync: cmd is empty"));
    }
    let c = &cri.engine.containers;
    let rec = c.resolve(&req.container_id).map_err(engine_status)?;
    if rec.state != ContainerState::Running {
        return Err(Status::failed_precondition(format!(
            "container {} is not running ({:?})",
            rec.id, rec.state
        )));
    }
    let process = exec_process(&rec, &req.cmd, false).map_err(engine_status)?;
    let out = c
        .ports
        .runtime
        .exec_sync(
            &rec.pod_id,
            &ExecRequest {
                container_id: rec.id.clone(),
                process,
                timeout: (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64)),
                max_output: MAX_OUTPUT,
                // The monitor also stops the drain at the request's deadline.
                drain: Duration::from_secs(cri.engine.info.config.runtime.exec_drain_timeout_secs),
            },
        )
        .await
        .map_err(runtime_error_status)?;
    if out.timed_out {
        return Err(Status::deadline_exceeded(format!(
            "ExecSync {:?} in container {} timed out after {}s",
            req.cmd, rec.id, req.timeout
        )));
    }
    Ok(ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    })
}
