//! `POST /containers/{id}/wait?condition=`, `/kill?signal=`, `/restart?t=`, `/pause`,
//! `/unpause` and `/rename?name=`: thin mappings onto the engine's Docker operations.

use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_engine::{Event, EventKind, Subject, WaitCondition};
use http::StatusCode;
use serde_json::json;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{find, find_synced, from_engine, namegen};
use crate::DockerApi;
use crate::error::ApiError;
use crate::events::container_event;
use crate::http::{Reply, json_stream, line, no_content};
use crate::router::Call;

/// The headers go out at once (the CLI starts the container only once its wait is in
/// place); the body `{"StatusCode": …}` follows when the condition holds.
pub async fn wait(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let condition = match call.query.non_empty("condition") {
        None | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?} (not-running, next-exit or removed)"
            )));
        }
    };
    let rec = find(api, key)?;
    let engine = api.runtime.clone();
    // Subscribed before the wait, so that the pod's removal cannot be missed.
    let mut pod_events = (condition == WaitCondition::Removed).then(|| engine.events().subscribe());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let body = match engine.wait_container(&rec.id, condition).await {
            Ok(code) => {
                if let Some(events) = pod_events.as_mut() {
                    // Bounded: a pod that outlives its container by other means (a CRI
                    // client removing the container alone) must not hang the client.
                    let gone = pod_gone(&engine, &rec.pod_id, events);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), gone).await;
                }
                json!({"StatusCode": code, "Error": null})
            }
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let _ = tx.send(line(&body));
    });
    Ok(json_stream(rx))
}

/// Returns once the pod `pod_id` is gone. The container is deleted before its pod is
/// released, and `--rm` (condition `removed`) must answer only when the name is free
/// again, as dockerd does: `docker run --rm --name x …` then `docker run --name x …`, or a
/// generated name that happens to repeat, would otherwise find the pod still there.
async fn pod_gone(engine: &berth_engine::Engine, pod_id: &str, events: &mut Receiver<Event>) {
    loop {
        if engine.pods.store.get(pod_id).is_none() {
            return;
        }
        match events.recv().await {
            Ok(ev)
                if ev.subject == Subject::Pod
                    && ev.kind == EventKind::Deleted
                    && ev.id == pod_id =>
            {
                return;
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

pub async fn kill(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let signal = match call.query.non_empty("signal") {
        None => libc_signal("KILL"),
        Some(s) => parse_signal(s)?,
    };
    let rec = find_synced(api, key).await?;
    if rec.state != ContainerState::Running {
        return Err(not_running(&rec.id));
    }
    // Before the signal, so that `kill` comes before the `die` it may cause (dockerd's order).
    container_event(api, &rec, "kill", vec![("signal", signal.to_string())]);
    api.runtime
        .kill_container(&rec.id, signal)
        .await
        .map_err(from_engine)?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

pub async fn restart(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    let timeout = super::lifecycle::stop_timeout(call, api, &rec)?;
    api.runtime
        .restart_container(&rec.id, timeout)
        .await
        .map_err(from_engine)?;
    container_event(api, &rec, "restart", Vec::new());
    Ok(no_content(StatusCode::NO_CONTENT))
}

pub async fn pause(api: &DockerApi, key: &str, on: bool) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    if rec.state != ContainerState::Running {
        return Err(not_running(&rec.id));
    }
    if on && rec.paused {
        return Err(ApiError::conflict(format!(
            "Container {} is already paused",
            rec.id
        )));
    }
    if !on && !rec.paused {
        return Err(ApiError::conflict(format!(
            "Container {} is not paused",
            rec.id
        )));
    }
    let done = if on {
        api.runtime.pause_container(&rec.id).await
    } else {
        api.runtime.unpause_container(&rec.id).await
    };
    done.map_err(from_engine)?;
    container_event(api, &rec, if on { "pause" } else { "unpause" }, Vec::new());
    Ok(no_content(StatusCode::NO_CONTENT))
}

pub async fn rename(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let Some(name) = call.query.non_empty("name") else {
        return Err(ApiError::bad_request(
            "Neither old nor new names may be empty",
        ));
    };
    let name = namegen::validate(name)?.to_string();
    let rec = find(api, key)?;
    if let Ok(other) = find(api, &format!("/{name}"))
        && other.name == name
        && other.id != rec.id
    {
        return Err(ApiError::conflict(format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
            other.id
        )));
    }
    api.runtime
        .rename_container(&rec.id, &name)
        .await
        .map_err(from_engine)?;
    let renamed = ContainerRecord {
        name: name.clone(),
        ..rec.clone()
    };
    container_event(
        api,
        &renamed,
        "rename",
        vec![("oldName", format!("/{}", rec.name))],
    );
    Ok(no_content(StatusCode::NO_CONTENT))
}

fn not_running(id: &str) -> ApiError {
    ApiError::conflict(format!("Container {id} is not running"))
}

/// Signal numbers by name, as `kill -l` on Linux x86-64 (with or without `SIG`).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

fn libc_signal(name: &str) -> i32 {
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or(9)
}

/// `9`, `KILL`, `SIGKILL`, `sigkill`, and the real-time signals 34..=64.
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").ok(), Some(9));
        assert_eq!(parse_signal("SIGTERM").ok(), Some(15));
        assert_eq!(parse_signal("hup").ok(), Some(1));
        assert_eq!(parse_signal("USR1").ok(), Some(10));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
    }
}
