//! Finding processes a test left behind. Each harness-owned process tree is marked with
//! `BERTH_TEST_MARK=<unique>` in its environment; children inherit it, so scanning
//! `/proc/*/environ` finds grandchildren too (e.g. processes berthd spawned).

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment variable that marks processes started by the harness.
pub const MARK_VAR: &str = "BERTH_TEST_MARK";

/// A live process carrying a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub pid: i32,
    pub cmdline: String,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} `{}`", self.pid, self.cmdline)
    }
}

/// Processes (not zombies) whose environment holds `BERTH_TEST_MARK=<mark>`.
pub fn marked(mark: &str) -> Vec<Leftover> {
    let needle = format!("{MARK_VAR}={mark}");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = entry.path();
        let Ok(env) = std::fs::read(base.join("environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(base.join("stat")).unwrap_or_default();
        // State is the first field after the ")" that closes comm.
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start())
            .unwrap_or("");
        if state.starts_with('Z') || state.starts_with('X') {
            continue;
        }
        let cmd = std::fs::read(base.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .trim()
            .to_string();
        out.push(Leftover { pid, cmdline });
    }
    out
}

/// Waits up to `grace` for marked processes to go away; returns the ones still alive.
pub fn wait_gone(mark: &str, grace: Duration) -> Vec<Leftover> {
    let until = Instant::now() + grace;
    loop {
        let left = marked(mark);
        if left.is_empty() || Instant::now() >= until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILLs the given processes (cleanup after a leak was recorded).
pub fn kill_all(procs: &[Leftover]) {
    for p in procs {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
    }
}

/// Checks that no process of `mark` is left: kills any survivors and returns them as an error.
pub fn check_none_left(mark: &str, what: &str) -> Result<(), String> {
    let left = wait_gone(mark, Duration::from_secs(3));
    if left.is_empty() {
        return Ok(());
    }
    kill_all(&left);
    let list: Vec<String> = left.iter().map(|l| l.to_string()).collect();
    Err(format!("{what} left processes behind: {}", list.join("; ")))
}

/// Mount points at or below `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().trim_end_matches('/').to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(String::from)
        .collect()
}
