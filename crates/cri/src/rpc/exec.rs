//! `Exec`: validates the request and answers the URL of a streaming session that runs the
//! command in the container (see berth_core::stream); the process starts when the client
//! connects to that URL.

use berth_api::cri::{ExecRequest, ExecResponse};
use berth_core::container::record::ContainerState;
use berth_core::stream::{ExecStreamRequest, StreamRequest};
use tonic::Status;

use super::stream_common::{check_streams, stream_error_status};
use crate::Cri;
use crate::error::engine_status;
use berth_engine::containers::process::exec_process;

pub fn handle(cri: &Cri, req: ExecRequest) -> Result<ExecResponse, Status> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument("Exec: container_id is empty"));
    }
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("Exec: cmd is empty"));
    }
    check_streams("Exec", req.stdin, req.stdout, req.stderr, req.tty)?;
    let c = &cri.engine.containers;
    let rec = c.resolve(&req.container_id).map_err(engine_status)?;
    if rec.state != ContainerState::Running {
        return Err(Status::failed_precondition(format!(
            "Exec: container {} is not running ({:?})",
            rec.id, rec.state
        )));
    }
    let process = exec_process(&rec, &req.cmd, req.tty).map_err(engine_status)?;
    let url = c
        .ports
        .streams
        .register(StreamRequest::Exec {
            pod_id: rec.pod_id.clone(),
            req: ExecStreamRequest {
                container_id: rec.id.clone(),
                process,
                tty: req.tty,
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            },
        })
        .map_err(stream_error_status)?;
    Ok(ExecResponse { url })
}
