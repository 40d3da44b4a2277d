//! The one reaper: every child of the monitor is collected here (waitpid(-1)) and its exit
//! handed to the container, exec or external runtime command it belongs to.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::server::Monitor;

/// How long a reaped PID nobody claimed yet is kept (its pid message may still be queued).
const UNCLAIMED_TTL: Duration = Duration::from_secs(30);

impl Monitor {
    pub fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("monitor: waitpid: {e}");
                    break;
                }
            };
            if !self.claim_exit(pid, code) {
                self.unclaimed.insert(pid, (code, Instant::now()));
            }
        }
        self.unclaimed
            .retain(|_, (_, at)| at.elapsed() < UNCLAIMED_TTL);
    }

    /// Hands an exit to its container or exec; false when nobody knows the PID (yet).
    pub fn claim_exit(&mut self, pid: i32, code: i32) -> bool {
        if let Some(h) = self.helpers.remove(&pid) {
            self.helper_exited(h, code);
            return true;
        }
        let container = self
            .containers
            .iter()
            .find(|(_, c)| c.rec.pid == Some(pid) && !c.reaped)
            .map(|(id, _)| id.clone());
        if let Some(id) = container {
            self.container_exited(&id, code);
            return true;
        }
        let exec = self
            .execs
            .iter()
            .find(|(_, e)| e.pid == Some(pid))
            .map(|(id, _)| *id);
        if let Some(id) = exec {
            self.exec_exited(id, code);
            return true;
        }
        // The intermediate init processes: their exit says nothing about the container,
        // unless the init reported itself as the process (its pid message is still queued).
        self.containers
            .values()
            .any(|c| c.init_pid == pid && c.rec.pid.is_some())
            || self
                .execs
                .values()
                .any(|e| e.init_pid == pid && e.pid.is_some())
    }

    /// A reaped PID that nobody claimed yet: taken from the map when its pid message comes.
    pub fn take_unclaimed(&mut self, pid: i32) -> Option<i32> {
        self.unclaimed.remove(&pid).map(|(code, _)| code)
    }
}
