//! Messages from a container's init on fd 3: its process's PID, its terminal's master (a
//! pty made inside the container), ready, errors, and the EOF that means the user's
//! program was exec'd.

use super::sys;

use super::cgroups;
use super::channel::InitMsg;
use super::container::Phase;
use super::protocol::{ErrorKind, Response};
use super::records;
use super::server::Monitor;

impl Monitor {
    pub fn init_sock_event(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Some(ch) = &mut c.sock else {
            return;
        };
        let (msgs, eof) = ch.read();
        for msg in msgs {
            self.init_msg(id, msg);
        }
        if eof {
            self.init_eof(id);
        }
    }

    fn init_msg(&mut self, id: &str, msg: InitMsg) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        match msg {
            InitMsg::Pid { pid } if c.rec.pid.is_none() && pid > 0 => {
                c.rec.pid = Some(pid);
                c.rec.pid_start = records::live_start_time(pid);
                if let Some(code) = self.take_unclaimed(pid) {
                    self.container_exited(id, code);
                }
            }
            InitMsg::Console => {
                let master = c.sock.as_mut().and_then(|ch| ch.take_fd());
                let ours = c.phase == Phase::Creating && c.rec.stdio.tty && c.stdout.is_none();
                if let Some(fd) = master.filter(|_| ours) {
                    let dup = sys::set_nonblocking(&fd)
                        .map_err(std::io::Error::from)
                        .and_then(|()| fd.try_clone());
                    match dup {
                        Ok(dup) => {
                            // Kept open so a container reading its tty blocks, not sees EOF.
                            c.stdin = Some(dup);
                            c.stdout = Some(fd);
                        }
                        Err(e) => self.fail_create(id, format!("the container's tty: {e}")),
                    }
                }
            }
            InitMsg::Ready if c.phase == Phase::Creating => {
                if c.rec.stdio.tty && c.stdout.is_none() {
                    let msg = "the init sent no terminal for a tty container".to_string();
                    return self.fail_create(id, msg);
                }
                self.mark_created(id)
            }
            // stderr is the monitor's log; the container's output never gets these.
            InitMsg::Warning { message } => eprintln!("monitor: container {id}: init: {message}"),
            InitMsg::Error { message } => match c.phase {
                Phase::Creating => self.fail_create(id, message),
                Phase::Starting => {
                    // The process exits 127; its exit is recorded as usual.
                    c.phase = Phase::Created;
                    c.deadline = None;
                    if let Some(client) = c.pending_start.take() {
                        self.reply(client, &Response::error(ErrorKind::Failed, message), &[]);
                    }
                }
                _ => eprintln!("monitor: container {id}: init: {message}"),
            },
            _ => {}
        }
    }

    fn init_eof(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.sock = None;
        match c.phase {
            Phase::Creating => {
                self.fail_create(id, "the init exited before the container was ready".into())
            }
            // The sync socket is close-on-exec: EOF means the user's program runs.
            Phase::Starting => self.mark_running(id),
            _ => {}
        }
    }

    /// The container is set up and waits for start: record it, answer the create.
    pub fn mark_created(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.phase = Phase::Created;
        c.deadline = None;
        c.rec.oom_base = cgroups::oom_kill_count(c.rec.cgroups_path.as_deref());
        let dir = records::container_dir(&self.dir, id);
        let resp = match records::write_json(&dir.join(records::STATE_FILE), &c.rec) {
            Ok(()) => Response::with_state(c.state()),
            Err(e) => Response::error(ErrorKind::Failed, format!("saving state: {e}")),
        };
        if let Some(client) = c.pending_create.take() {
            self.reply(client, &resp, &[]);
        }
    }

    /// The user's program runs: record it, answer the start.
    pub fn mark_running(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.phase = Phase::Running;
        c.deadline = None;
        c.rec.started_at = Some(records::now_ns());
        let dir = records::container_dir(&self.dir, id);
        let resp = match records::write_json(&dir.join(records::STATE_FILE), &c.rec) {
            Ok(()) => Response::with_state(c.state()),
            Err(e) => Response::error(ErrorKind::Failed, format!("saving state: {e}")),
        };
        if let Some(client) = c.pending_start.take() {
            self.reply(client, &resp, &[]);
        }
    }

    /// Creation failed: tell the client, kill what was started, wait for delete.
    pub fn fail_create(&mut self, id: &str, message: String) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let _ = c.signal(libc::SIGKILL, false);
        if c.init_pid > 0 {
            let _ = sys::kill(c.init_pid, libc::SIGKILL);
        }
        c.phase = Phase::Failed;
        c.deadline = None;
        c.sock = None;
        if let Some(client) = c.pending_create.take() {
            self.reply(client, &Response::error(ErrorKind::Failed, message), &[]);
        }
    }
}
