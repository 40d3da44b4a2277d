//! `POST /containers/{id}/attach` (hijacked, see [`crate::hijack`]) and
//! `POST /containers/{id}/resize?h=&w=`. Attaching joins the container's own stdio, which
//! its pod monitor holds from creation on: `docker run` attaches before it starts the
//! container, so none of the output is missed.

use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::stream::{AttachRequest, StdioSession};
use http::StatusCode;

use super::{find_synced, from_engine, logs};
use crate::DockerApi;
use crate::error::ApiError;
use crate::hijack::{self, DEFAULT_DETACH_KEYS};
use crate::http::{Reply, no_content};
use crate::router::Call;

pub async fn attach(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    if rec.paused {
        return Err(ApiError::conflict(
            "container is paused, unpause the container before attach",
        ));
    }
    let q = &call.query;
    // logs=1: what the container wrote so far comes first.
    let replay = match q.bool("logs") {
        true => logs::so_far(&rec, q.bool("stdout"), q.bool("stderr")),
        false => Vec::new(),
    };
    if !q.bool("stream") {
        // Only the log: nothing is joined.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for b in replay {
            let _ = tx.send(b);
        }
        return Ok(hijack::respond_chunks(
            call.take_upgrade(),
            rec.config.tty,
            rx,
        ));
    }
    if rec.state == ContainerState::Exited {
        // `docker start -a`: the output of the run the coming start begins, from the log.
        let rx = logs::next_run(api, &rec, q.bool("stdout"), q.bool("stderr"), replay);
        return Ok(hijack::respond_chunks(
            call.take_upgrade(),
            rec.config.tty,
            rx,
        ));
    }
    let tty = rec.config.tty;
    // dockerd ignores stdin for a container created without OpenStdin.
    let stdin = q.bool("stdin") && rec.config.stdin;
    let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr") && !tty);
    let detach = match q.non_empty("detachKeys") {
        Some(spec) => hijack::parse_detach_keys(spec)?,
        None => DEFAULT_DETACH_KEYS.to_vec(),
    };
    if !(stdin || stdout || stderr) {
        return Err(ApiError::bad_request(
            "attach: ask for at least one of stdin, stdout or stderr",
        ));
    }
    let mut session = open(api, &rec, stdin, stdout, stderr).await?;
    // The container's terminal is resized through /containers/{id}/resize.
    session.resize = None;
    Ok(hijack::respond(
        call.take_upgrade(),
        session,
        tty,
        stdin.then_some(detach),
        replay,
        Box::new(|_| {}),
    ))
}

async fn open(
    api: &DockerApi,
    rec: &ContainerRecord,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<StdioSession, ApiError> {
    let req = AttachRequest {
        container_id: rec.id.clone(),
        tty: rec.config.tty,
        stdin,
        stdout,
        stderr,
    };
    api.runtime
        .containers
        .ports
        .runtime
        .attach(&rec.pod_id, &req)
        .await
        .map_err(|e| from_engine(e.into()))
}

pub async fn resize(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let (width, height) = size(call)?;
    let rec = find_synced(api, key).await?;
    if rec.state != ContainerState::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    if !rec.config.tty {
        return Err(ApiError::conflict(format!(
            "Container {} has no tty to resize (created without Tty)",
            rec.id
        )));
    }
    // A short attach (output only) hands out the container's terminal resizer.
    let session = open(api, &rec, false, true, false).await?;
    let Some(resizer) = session.resize.as_ref() else {
        return Err(ApiError::internal("the attach session has no resizer"));
    };
    resizer
        .resize(width, height)
        .await
        .map_err(|e| from_engine(e.into()))?;
    Ok(no_content(StatusCode::OK))
}

/// `h` and `w` of a resize request.
pub fn size(call: &Call) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| -> Result<u16, ApiError> {
        let v = call.query.non_empty(k).unwrap_or("0");
        v.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
    };
    Ok((get("w")?, get("h")?))
}
