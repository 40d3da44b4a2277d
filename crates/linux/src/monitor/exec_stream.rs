//! Streamed exec (CRI Exec, `docker exec -it`): an extra process in a running container
//! whose fds 0-2 are the ones berthd passed with the request ([`super::fdpass`]), so its
//! bytes flow between berthd and the process without passing through the monitor. With a
//! tty berthd passes none: the runtime (berth's init, runc, crun) makes the pty in the
//! container and its master goes to berthd with the first answer. The
//! process is spawned like exec_sync's (`<exe> init --exec`, or the external runtime's
//! `exec --detach`) and reaped here; the client is answered once it runs and again when it
//! exits. The client's connection is the session: when it closes first, the process is
//! SIGKILLed (and still reaped).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::container::Phase;
use super::exec::Exec;
use super::oci::{self, Helper, OciCli};
use super::protocol::{ErrorKind, Response};
use super::records;
use super::server::Monitor;
use super::sys;

impl Monitor {
    pub fn exec_stream(
        &mut self,
        client: u64,
        id: &str,
        process: &serde_json::Value,
        tty: bool,
        fds: Vec<OwnedFd>,
    ) -> Option<Response> {
        // With a tty the runtime makes the terminal in the container: the process' fds
        // 0-2 are /dev/null until it replaces them.
        let got = fds.len();
        let stdio = match (tty, <[OwnedFd; 3]>::try_from(fds)) {
            (false, Ok(stdio)) => stdio,
            (true, Err(_)) if got == 0 => match sys::null_stdio() {
                Ok(stdio) => stdio,
                Err(msg) => return Some(Response::error(ErrorKind::Failed, msg)),
            },
            (false, _) => {
                return Some(Response::error(
                    ErrorKind::InvalidArgument,
                    format!(
                        "exec_stream needs 3 file descriptors (stdin, stdout, stderr), got {got}"
                    ),
                ));
            }
            (true, _) => {
                return Some(Response::error(
                    ErrorKind::InvalidArgument,
                    format!("exec_stream with a tty takes no file descriptors, got {got}"),
                ));
            }
        };
        let Some(c) = self.containers.get(id) else {
            return Some(Response::not_found(id));
        };
        let (true, Some(pid)) = (c.phase == Phase::Running && c.alive(), c.rec.pid) else {
            return Some(Response::error(
                ErrorKind::FailedPrecondition,
                "is not running",
            ));
        };
        let cli = OciCli::of(&self.dir, &c.rec);
        let mut process = process.clone();
        if let Some(p) = process.as_object_mut() {
            p.insert("terminal".into(), tty.into());
        }
        let cgroup = c.rec.cgroups_path.clone();
        let bundle = c.rec.bundle.clone();
        let n = self.next_id();
        let file = records::container_dir(&self.dir, id).join(format!("exec-{n}.json"));
        // Every runtime makes an exec's pty inside the container and sends its master back:
        // runc and crun to a console socket, berth's init on its sync socket. It is passed
        // on to berthd once the process runs.
        let mut console = None;
        let spawned = match &cli {
            Some(cli) => records::write_json(&file, &process)
                .map_err(|e| format!("writing {}: {e}", file.display()))
                .and_then(|()| {
                    if tty {
                        console = Some(oci::console_listener(&self.dir, n)?);
                    }
                    let sock = console.as_ref().map(|(_, p)| p.as_path());
                    self.spawn_oci_exec(cli, id, &file, stdio, sock)
                })
                .map(|pid| (pid, None)),
            None => self
                .spawn_exec(&file, pid, cgroup, &bundle, &process, stdio)
                .map(|(pid, sock)| (pid, Some(sock))),
        };
        match spawned {
            Ok((init_pid, sock)) => {
                if cli.is_some() {
                    self.helpers.insert(init_pid, Helper::Exec(n));
                }
                let mut e = Exec::streamed(client, id, init_pid, sock, file, cli);
                e.console = console;
                self.execs.insert(n, e);
                None
            }
            Err(msg) => {
                if let Some((_, path)) = console {
                    let _ = std::fs::remove_file(path);
                }
                let _ = std::fs::remove_file(&file);
                Some(Response::error(ErrorKind::Failed, msg))
            }
        }
    }

    /// The exec's process runs its program: tell the client (with the pty master the
    /// runtime made in the container, for a tty), or, when the client is already gone, end
    /// it.
    pub fn exec_stream_started(&mut self, n: u64, master: Option<OwnedFd>) {
        let Some(e) = self.execs.get_mut(&n).filter(|e| !e.answered) else {
            return;
        };
        e.answered = true;
        let (client, pid) = (e.client, e.pid);
        let fds: Vec<RawFd> = master.iter().map(AsRawFd::as_raw_fd).collect();
        self.reply_fds(client, &Response::ok(), &[], &fds);
        drop(master);
        match self.clients.get_mut(&client) {
            Some(c) => c.busy = true,
            None => {
                if let Some(pid) = pid {
                    let _ = sys::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// A streaming client went away: its exec's process is killed. One still starting is
    /// killed once its PID is known ([`Monitor::exec_stream_started`]).
    pub fn exec_stream_client_gone(&mut self, client: u64) {
        for e in self.execs.values() {
            if e.stream
                && e.client == client
                && let Some(pid) = e.pid
            {
                let _ = sys::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Answers a streaming session's first line and keeps the connection for its second
    /// (the connection is then only watched for hang-up). False when the client is gone.
    pub fn reply_streaming(&mut self, client: u64, resp: &Response) -> bool {
        self.reply(client, resp, &[]);
        match self.clients.get_mut(&client) {
            Some(c) => {
                c.busy = true;
                true
            }
            None => false,
        }
    }
}
