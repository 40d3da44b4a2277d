//! What the monitor keeps on disk per container, under `<monitor dir>/containers/<id>/`:
//! `state.json` (written at create, rewritten at start) and `exit.json` (written once, when
//! the process is reaped). Both are written temp → fsync → rename, so a reader (berthd,
//! or a restarted monitor) sees either nothing or a whole record.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::runtime::{ProcessState, ProcessStatus, StdioConfig};
use serde::{Deserialize, Serialize};

use super::protocol::CONTAINERS;

pub const STATE_FILE: &str = "state.json";
pub const EXIT_FILE: &str = "exit.json";
/// Exit code reported when the real one was lost (the monitor died before reaping).
pub const UNKNOWN_EXIT: i32 = 255;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub version: u32,
    pub id: String,
    pub bundle: String,
    pub handler: String,
    /// The external OCI runtime's binary (runc, crun); none for berth's own runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub stdio: StdioConfig,
    /// `linux.cgroupsPath` of the bundle's config.json.
    pub cgroups_path: Option<String>,
    pub pid: Option<i32>,
    /// Start time of `pid` (/proc/PID/stat field 22), to tell a recycled PID apart.
    pub pid_start: Option<u64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    /// The cgroup's OOM kill count when the container was created.
    pub oom_base: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ExitRecord {
    pub version: u32,
    pub exit_code: i32,
    pub finished_at: i64,
    pub oom_killed: bool,
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn container_dir(monitor_dir: &Path, id: &str) -> PathBuf {
    monitor_dir.join(CONTAINERS).join(id)
}

/// Writes `value` as JSON to `path` atomically and durably.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn read_record(dir: &Path) -> Option<ContainerRecord> {
    read_json(&dir.join(STATE_FILE))
}

pub fn read_exit(dir: &Path) -> Option<ExitRecord> {
    read_json(&dir.join(EXIT_FILE))
}

/// Start time (clock ticks since boot) of a live, non-zombie process.
pub fn live_start_time(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// Whether the record's process still runs (same PID, same start time).
pub fn still_running(rec: &ContainerRecord) -> bool {
    match (rec.pid, rec.pid_start) {
        (Some(pid), Some(start)) => live_start_time(pid) == Some(start),
        _ => false,
    }
}

/// The state as the files tell it, for when no monitor answers. A process that is gone
/// without an exit record exited with an unknown code.
pub fn state_from_disk(monitor_dir: &Path, id: &str) -> Option<ProcessState> {
    let dir = container_dir(monitor_dir, id);
    let rec = read_record(&dir)?;
    let mut state = ProcessState {
        status: ProcessStatus::Created,
        pid: rec.pid,
        started_at: rec.started_at,
        finished_at: None,
        exit_code: None,
        oom_killed: false,
    };
    if let Some(exit) = read_exit(&dir) {
        state.status = ProcessStatus::Exited;
        state.finished_at = Some(exit.finished_at);
        state.exit_code = Some(exit.exit_code);
        state.oom_killed = exit.oom_killed;
    } else if still_running(&rec) {
        if rec.started_at.is_some() {
            state.status = ProcessStatus::Running;
        }
    } else {
        state.status = ProcessStatus::Exited;
        state.exit_code = Some(UNKNOWN_EXIT);
    }
    Some(state)
}
