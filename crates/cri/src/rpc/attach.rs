//! `Attach`: validates the request and answers the URL of a streaming session joined to
//! the container's own stdio, which its pod monitor holds.

use berth_api::cri::{AttachRequest, AttachResponse};
use berth_core::container::record::ContainerState;
use berth_core::stream::{self, StreamRequest};
use tonic::Status;

use super::stream_common::{check_streams, stream_error_status};
use crate::Cri;
use crate::error::engine_status;

pub fn handle(cri: &Cri, req: AttachRequest) -> Result<AttachResponse, Status> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument("Attach: container_id is empty"));
    }
    check_streams("Attach", req.stdin, req.stdout, req.stderr, req.tty)?;
    let c = &cri.engine.containers;
    let rec = c.resolve(&req.container_id).map_err(engine_status)?;
    if rec.state != ContainerState::Running {
        return Err(Status::failed_precondition(format!(
            "Attach: container {} is not running ({:?})",
            rec.id, rec.state
        )));
    }
    if req.stdin && !rec.config.stdin {
        return Err(Status::failed_precondition(format!(
            "Attach: container {} was not created with stdin: true, so there is no stdin to attach to",
            rec.id
        )));
    }
    let tty = rec.config.tty;
    let url = c
        .ports
        .streams
        .register(StreamRequest::Attach {
            pod_id: rec.pod_id.clone(),
            req: stream::AttachRequest {
                container_id: rec.id.clone(),
                tty,
                stdin: req.stdin,
                stdout: req.stdout,
                // With a tty the container has no separate stderr.
                stderr: req.stderr && !tty,
            },
        })
        .map_err(stream_error_status)?;
    Ok(AttachResponse { url })
}
