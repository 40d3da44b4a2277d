//! Syncing a record with the runtime, stopping, removing; and the steps a pod's stop and
//! removal take for each of its containers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::runtime::{ProcessState, ProcessStatus, RuntimeError};

use super::Containers;
use crate::events::EventKind as Ev;

pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
/// How long to wait for a SIGKILLed container to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

/// An image's StopSignal (`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`) as a number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if let Some(off) = name.strip_prefix("RTMIN+") {
        return off.parse::<i32>().ok().map(|o| 34 + o).filter(|n| *n <= 64);
    }
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        "RTMIN" => 34,
        "RTMAX" => 64,
        _ => return None,
    })
}

fn apply_exit(rec: &mut ContainerRecord, st: &ProcessState) {
    if rec.started_at == 0
        && let Some(t) = st.started_at
    {
        rec.started_at = t;
    }
    rec.finish(
        st.exit_code.unwrap_or(255),
        st.finished_at.unwrap_or_else(now_ns),
        st.oom_killed,
    );
}

/// Brings the record up to date with what the runtime saw (an exit while berthd was down,
/// a process that vanished). Returns true when the record changed.
pub async fn refresh(c: &Containers, rec: &mut ContainerRecord) -> Result<bool, RuntimeError> {
    if !matches!(rec.state, ContainerState::Created | ContainerState::Running) {
        return Ok(false);
    }
    let st = c.ports.runtime.state(&rec.pod_id, &rec.id).await?;
    let changed = match st.status {
        ProcessStatus::Exited => {
            apply_exit(rec, &st);
            true
        }
        ProcessStatus::Unknown if rec.state == ContainerState::Running => {
            rec.finish(255, now_ns(), false);
            rec.reason = "Unknown".into();
            rec.message =
                "the container's process is gone and its exit status was not recorded".into();
            true
        }
        _ => false,
    };
    if changed {
        c.store
            .put(rec)
            .map_err(|e| RuntimeError::failed("record", e))?;
        c.events.container(Ev::Stopped, rec, &c.store);
    }
    Ok(changed)
}

/// Stops a container: its stop signal, then SIGKILL after `timeout`. Idempotent.
pub async fn stop(
    c: &Containers,
    rec: &mut ContainerRecord,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    refresh(c, rec).await?;
    if matches!(rec.state, ContainerState::Exited | ContainerState::Creating) {
        return Ok(());
    }
    let rt = &c.ports.runtime;
    if rec.state == ContainerState::Running && !timeout.is_zero() {
        let sig = rec
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(SIGTERM);
        rt.kill(&rec.pod_id, &rec.id, sig, false).await?;
        if rec.paused {
            // Frozen, it could not act on the signal: thawed, it can (as Docker does).
            rt.resume(&rec.pod_id, &rec.id).await?;
        }
        let st = rt.wait(&rec.pod_id, &rec.id, timeout).await?;
        if st.status == ProcessStatus::Exited {
            apply_exit(rec, &st);
            c.store
                .put(rec)
                .map_err(|e| RuntimeError::failed("record", e))?;
            c.events.container(Ev::Stopped, rec, &c.store);
            return Ok(());
        }
    }
    rt.kill(&rec.pod_id, &rec.id, SIGKILL, true).await?;
    let st = rt.wait(&rec.pod_id, &rec.id, KILL_WAIT).await?;
    match st.status {
        ProcessStatus::Exited | ProcessStatus::Unknown => {
            apply_exit(rec, &st);
            c.store
                .put(rec)
                .map_err(|e| RuntimeError::failed("record", e))?;
            c.events.container(Ev::Stopped, rec, &c.store);
            Ok(())
        }
        _ => Err(RuntimeError::failed(
            "stop",
            format!(
                "container {} did not exit {}s after SIGKILL",
                rec.id,
                KILL_WAIT.as_secs()
            ),
        )),
    }
}

/// Removes a container: stops it if needed, then releases the runtime's part, the rootfs
/// and the record. Idempotent.
pub async fn remove(c: &Containers, rec: &mut ContainerRecord) -> Result<(), RuntimeError> {
    if matches!(rec.state, ContainerState::Created | ContainerState::Running) {
        stop(c, rec, Duration::ZERO).await?;
    }
    c.ports.runtime.delete(&rec.pod_id, &rec.id).await?;
    c.ports.rootfs.remove(&rec.bundle).await?;
    c.store
        .delete(&rec.id)
        .map_err(|e| RuntimeError::failed("record", e))?;
    c.forget_lock(&rec.id);
    c.events.container(Ev::Deleted, rec, &c.store);
    Ok(())
}

/// StopPodSandbox: every container of the pod is stopped, forcibly (as containerd does).
pub async fn stop_pod_containers(c: &Containers, pod_id: &str) -> Result<(), RuntimeError> {
    for rec in c.store.list().into_iter().filter(|r| r.pod_id == pod_id) {
        let _lock = c.lock_of(&rec.id).lock_owned().await;
        if let Some(mut rec) = c.store.get(&rec.id) {
            // Stopped with its pod: a restart policy (Docker's) holds off until started.
            if rec.restart_policy.is_some() && !rec.manually_stopped {
                rec.manually_stopped = true;
                c.store
                    .put(&rec)
                    .map_err(|e| RuntimeError::failed("record", e))?;
            }
            stop(c, &mut rec, Duration::ZERO).await?;
        }
    }
    Ok(())
}

/// RemovePodSandbox: every container of the pod is removed, then the pod's monitor ends.
pub async fn remove_pod_containers(c: &Containers, pod_id: &str) -> Result<(), RuntimeError> {
    for rec in c.store.list().into_iter().filter(|r| r.pod_id == pod_id) {
        let lock = c.lock_of(&rec.id).lock_owned().await;
        if let Some(mut rec) = c.store.get(&rec.id) {
            remove(c, &mut rec).await?;
        }
        drop(lock);
    }
    c.ports.runtime.release_pod(pod_id).await
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(37));
        assert_eq!(parse_signal("SIGWINCH"), Some(28));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("99"), None);
    }
}
