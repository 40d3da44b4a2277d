//! Requests on existing containers (kill, wait, update, reopen-log, delete), shutdown,
//! deadlines and the recovery of a restarted monitor's containers from disk.

use std::time::Instant;

use super::cgroups;
use super::container::{Container, Phase};
use super::log::LogFile;
use super::oci::OciCli;
use super::protocol::{CONTAINERS, ErrorKind, Response};
use super::records;
use super::server::Monitor;
use super::sys;

impl Monitor {
    pub fn kill(&mut self, id: &str, signal: i32, all: bool) -> Response {
        let Some(c) = self.containers.get(id) else {
            return Response::not_found(id);
        };
        if c.phase == Phase::Creating {
            return Response::error(ErrorKind::FailedPrecondition, "is being created");
        }
        if !c.alive() {
            return Response::ok();
        }
        let sent = c.signal(signal, all);
        if signal == libc::SIGKILL {
            // A paused container dies only once thawed (cgroup v1), as `docker kill` expects.
            cgroups::thaw_if_frozen(c.rec.cgroups_path.as_deref());
        }
        match sent {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(ErrorKind::Failed, e),
        }
    }

    /// Freezes (`docker pause`) or thaws a running container.
    pub fn set_frozen(&mut self, id: &str, frozen: bool) -> Response {
        let Some(c) = self.containers.get(id) else {
            return Response::not_found(id);
        };
        if c.phase != Phase::Running || !c.alive() {
            return Response::error(ErrorKind::FailedPrecondition, "is not running");
        }
        let done = match OciCli::of(&self.dir, &c.rec) {
            Some(cli) => cli.freeze(id, frozen),
            None => cgroups::set_frozen(c.rec.cgroups_path.as_deref(), frozen),
        };
        match done {
            Ok(()) => Response::ok(),
            Err(e) => {
                let what = if frozen { "pausing" } else { "resuming" };
                Response::error(ErrorKind::Failed, format!("{what}: {e}"))
            }
        }
    }

    pub fn wait(&mut self, client: u64, id: &str) -> Option<Response> {
        let Some(c) = self.containers.get_mut(id) else {
            return Some(Response::not_found(id));
        };
        if matches!(c.phase, Phase::Stopped | Phase::Failed) {
            return Some(Response::with_state(c.state()));
        }
        c.waiters.push(client);
        None
    }

    pub fn update(&mut self, id: &str, resources: &serde_json::Value) -> Response {
        let Some(c) = self.containers.get(id) else {
            return Response::not_found(id);
        };
        if !c.alive() {
            return Response::error(ErrorKind::FailedPrecondition, "is not running");
        }
        let applied = match OciCli::of(&self.dir, &c.rec) {
            Some(cli) => cli.update(id, resources),
            None => cgroups::apply(c.rec.cgroups_path.as_deref(), resources),
        };
        match applied {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(ErrorKind::Failed, format!("updating resources: {e}")),
        }
    }

    pub fn reopen_log(&mut self, id: &str) -> Response {
        let Some(c) = self.containers.get_mut(id) else {
            return Response::not_found(id);
        };
        if c.phase != Phase::Running {
            return Response::error(ErrorKind::FailedPrecondition, "is not running");
        }
        match c.log.reopen() {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(ErrorKind::Failed, format!("reopening the log: {e}")),
        }
    }

    pub fn delete(&mut self, client: u64, id: &str) -> Option<Response> {
        let Some(c) = self.containers.get_mut(id) else {
            return Some(Response::ok());
        };
        match c.phase {
            Phase::Running | Phase::Starting => {
                return Some(Response::error(
                    ErrorKind::FailedPrecondition,
                    "is running; stop it first",
                ));
            }
            Phase::Creating => {
                return Some(Response::error(
                    ErrorKind::FailedPrecondition,
                    "is being created",
                ));
            }
            Phase::Created | Phase::Failed if c.alive() => {
                // Never started: nothing of the user's ran yet, so it may simply go.
                let _ = c.signal(libc::SIGKILL, true);
                cgroups::thaw_if_frozen(c.rec.cgroups_path.as_deref());
                c.pending_delete.push(client);
                return None;
            }
            _ => {}
        }
        Some(self.finish_delete(id))
    }

    /// Forgets a container whose processes are gone: pipes, cgroup, state dir.
    pub fn finish_delete(&mut self, id: &str) -> Response {
        self.attach_deleted(id);
        let Some(c) = self.containers.get_mut(id) else {
            return Response::ok();
        };
        c.close_stdio();
        if let Some((_, path)) = c.console.take() {
            let _ = std::fs::remove_file(path);
        }
        // The runtime's state (and its cgroup) go first; what it left is removed below.
        if let Some(cli) = OciCli::of(&self.dir, &c.rec)
            && let Err(e) = cli.delete(id)
        {
            return Response::error(ErrorKind::Failed, e);
        }
        cgroups::kill_all(c.rec.cgroups_path.as_deref());
        if let Err(e) = cgroups::remove(c.rec.cgroups_path.as_deref()) {
            return Response::error(ErrorKind::Failed, e);
        }
        let dir = records::container_dir(&self.dir, id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Response::error(
                ErrorKind::Failed,
                format!("removing {}: {e}", dir.display()),
            );
        }
        self.containers.remove(id);
        Response::ok()
    }

    pub fn request_shutdown(&mut self, client: u64, kill: bool) -> Option<Response> {
        if !kill && !self.containers.is_empty() {
            let ids: Vec<&str> = self.containers.keys().map(String::as_str).collect();
            return Some(Response::error(
                ErrorKind::FailedPrecondition,
                format!("the pod still has containers: {}", ids.join(", ")),
            ));
        }
        for c in self.containers.values() {
            if c.alive() {
                let _ = c.signal(libc::SIGKILL, true);
                cgroups::thaw_if_frozen(c.rec.cgroups_path.as_deref());
            }
        }
        for e in self.execs.values() {
            let _ = sys::kill(e.pid.unwrap_or(e.init_pid), libc::SIGKILL);
        }
        self.shutdown = Some(client);
        None
    }

    /// Completes a shutdown once every process is gone.
    pub fn check_shutdown(&mut self) {
        let Some(client) = self.shutdown else {
            return;
        };
        if self.containers.values().any(Container::alive) || !self.execs.is_empty() {
            return;
        }
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        let mut failures = Vec::new();
        for id in ids {
            let resp = self.finish_delete(&id);
            if let Some(e) = resp.error {
                failures.push(format!("{id}: {}", e.message));
            }
        }
        self.shutdown = None;
        if failures.is_empty() {
            self.reply(client, &Response::ok(), &[]);
            self.exit = true;
        } else {
            let msg = format!("shutdown: {}", failures.join("; "));
            self.reply(client, &Response::error(ErrorKind::Failed, msg), &[]);
        }
    }

    pub fn check_deadlines(&mut self) {
        let now = Instant::now();
        let late: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            let Some(c) = self.containers.get_mut(&id) else {
                continue;
            };
            c.deadline = None;
            match c.phase {
                Phase::Creating => self.fail_create(&id, "the init timed out".into()),
                Phase::Starting => {
                    let _ = c.signal(libc::SIGKILL, true);
                    if let Some(client) = c.pending_start.take() {
                        let r = Response::error(ErrorKind::Failed, "start timed out");
                        self.reply(client, &r, &[]);
                    }
                }
                _ => {}
            }
        }
        self.exec_deadlines(now);
    }

    /// Loads the containers a previous monitor of this pod left on disk. Those still
    /// running are watched through pidfds (their exit codes are lost: reported as 255).
    pub fn recover(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(CONTAINERS)) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(rec) = records::read_record(&dir) else {
                // Never got ready: nothing ran; forget it.
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            };
            let log = LogFile::discard();
            let id = rec.id.clone();
            let mut c = Container::new(rec, Phase::Stopped, log);
            c.reaped = true;
            if let Some(exit) = records::read_exit(&dir) {
                c.exit = Some(exit);
            } else if let (true, Some(pid)) = (records::still_running(&c.rec), c.rec.pid)
                && let Some(fd) = sys::pidfd_open(pid)
            {
                c.phase = match c.rec.started_at {
                    Some(_) => Phase::Running,
                    None => Phase::Created,
                };
                c.reaped = false;
                c.pidfd = Some(fd);
                // Output pipes died with the old monitor; a new log handle still serves
                // reopen requests.
                if let Ok(log) = LogFile::open(c.rec.stdio.log_path.clone()) {
                    c.log = log;
                }
            } else {
                let exit = records::ExitRecord {
                    version: 1,
                    exit_code: records::UNKNOWN_EXIT,
                    finished_at: records::now_ns(),
                    oom_killed: false,
                };
                let _ = records::write_json(&dir.join(records::EXIT_FILE), &exit);
                c.exit = Some(exit);
            }
            self.containers.insert(id, c);
        }
    }
}
