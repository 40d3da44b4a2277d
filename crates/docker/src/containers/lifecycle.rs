//! `POST /containers/{id}/start`, `POST /containers/{id}/stop?t=`,
//! `DELETE /containers/{id}?force=&v=`, and the removal of `--rm` (AutoRemove) containers
//! once they exit.

use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_engine::{EventKind, Subject};
use http::StatusCode;
use tokio::sync::broadcast::error::RecvError;

use super::{Stored, find, find_synced, from_engine, is_docker, stored};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, no_content};
use crate::router::Call;

/// dockerd's default grace period before SIGKILL.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

pub async fn start(api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    if rec.state == ContainerState::Running {
        // dockerd: starting a running container changes nothing.
        return Ok(no_content(StatusCode::NOT_MODIFIED));
    }
    api.runtime
        .start_container(&rec.id)
        .await
        .map_err(start_error)?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// A program that cannot be exec'd is the request's fault (400, as dockerd), worded so the
/// CLI exits 127 (not found) or 126 (not executable) as it does with dockerd: it looks for
/// "executable file not found" and "permission denied" in the message.
fn start_error(e: berth_engine::EngineError) -> ApiError {
    let msg = e.to_string();
    if msg.contains("No such file or directory") {
        ApiError::bad_request(format!("{msg}: executable file not found in $PATH"))
    } else if msg.contains("Permission denied") {
        ApiError::bad_request(format!("{msg}: permission denied"))
    } else {
        from_engine(e)
    }
}

pub async fn stop(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    if rec.state != ContainerState::Running {
        return Ok(no_content(StatusCode::NOT_MODIFIED));
    }
    let timeout = stop_timeout(call, api, &rec)?;
    // dockerd's sequence: kill (the stop signal), die, stop.
    crate::events::container_event(api, &rec, "kill", vec![("signal", "15".to_string())]);
    api.runtime
        .stop_container(&rec.id, timeout)
        .await
        .map_err(from_engine)?;
    crate::events::container_event(api, &rec, "stop", Vec::new());
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// The grace period before SIGKILL: `?t=`, else the container's StopTimeout, else 10 s.
pub fn stop_timeout(
    call: &Call,
    api: &DockerApi,
    rec: &ContainerRecord,
) -> Result<Duration, ApiError> {
    let secs = match call.query.non_empty("t") {
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t:?} (seconds)")))?,
        None => stored(api, rec)
            .body
            .stop_timeout
            .unwrap_or(DEFAULT_STOP_TIMEOUT),
    };
    // A negative timeout waits for ever in dockerd; a day is as good.
    Ok(Duration::from_secs(if secs < 0 {
        86_400
    } else {
        secs as u64
    }))
}

pub async fn delete(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    if rec.state == ContainerState::Running && !call.query.bool("force") {
        return Err(ApiError::conflict(format!(
            "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
            rec.id
        )));
    }
    remove(api, &rec, call.query.bool("v")).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// Removes the container's pod (which stops and removes the container), its logs and,
/// with `volumes` (`rm -v`, `--rm`), its anonymous volumes.
pub async fn remove(api: &DockerApi, rec: &ContainerRecord, volumes: bool) -> Result<(), ApiError> {
    let Stored {
        log_dir, mounts, ..
    } = stored(api, rec);
    api.runtime
        .remove_pod(&rec.pod_id)
        .await
        .map_err(from_engine)?;
    api.execs.forget_container(&rec.id);
    if !log_dir.is_empty()
        && let Err(e) = std::fs::remove_dir_all(&log_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(container = %rec.id, dir = %log_dir, error = %e, "removing the container's logs");
    }
    if volumes {
        crate::volumes::routes::remove_anonymous(api, &mounts).await;
    }
    Ok(())
}

fn auto_remove(api: &DockerApi, rec: &ContainerRecord) -> bool {
    is_docker(rec)
        && stored(api, rec)
            .body
            .host_config
            .and_then(|h| h.auto_remove)
            .unwrap_or(false)
}

/// Removes AutoRemove containers that exit, for as long as the API lives; those that
/// exited while berthd was down go first.
pub fn spawn_auto_remover(api: &Arc<DockerApi>) {
    let mut events = api.runtime.events().subscribe();
    let weak: Weak<DockerApi> = Arc::downgrade(api);
    tokio::spawn(async move {
        if let Some(api) = weak.upgrade() {
            for rec in super::all(&api).await {
                if rec.state == ContainerState::Exited && auto_remove(&api, &rec) {
                    let _ = remove(&api, &rec, true).await;
                }
            }
        }
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            if ev.subject != Subject::Container || ev.kind != EventKind::Stopped {
                continue;
            }
            let Some(api) = weak.upgrade() else { return };
            let Ok(rec) = find(&api, &ev.id) else {
                continue;
            };
            if auto_remove(&api, &rec)
                && let Err(e) = remove(&api, &rec, true).await
            {
                tracing::warn!(container = %rec.id, error = %e, "removing an AutoRemove container after its exit");
            }
        }
    });
}
