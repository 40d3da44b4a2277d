//! Streamed exec (CRI Exec, `docker exec -it`): an extra process in a running container
//! whose fds 0-2 are the ones berthd passed with the request ([`super::fdpass`]), so its
//! bytes flow between berthd and the process without passing through the monitor. The
//! process is spawned like exec_sync's (`<exe> init --exec`, or the external runtime's
//! `exec --detach`) and reaped here; the client is answered once it runs and again when it
//! exits. The client's connection is the session: when it closes first, the process is
//! SIGKILLed (and still reaped).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

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
        let got = fds.len();
        let Ok(stdio) = <[OwnedFd; 3]>::try_from(fds) else {
            return Some(Response::error(
                ErrorKind::InvalidArgument,
                format!("exec_stream needs 3 file descriptors (stdin, stdout, stderr), got {got}"),
            ));
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
        // runc and crun make an exec's pty inside the container and send its master to a
        // console socket: it is passed on to berthd, whose own pty then goes unused.
        let mut console = None;
        let spawned = match &cli {
            Some(cli) => records::write_json(&file, &process)
                .map_err(|e| format!("writing {}: {e}", file.display()))
                .and_then(|()| {
                    let stdio = match tty {
                        true => {
                            console = Some(oci::console_listener(&self.dir, n)?);
                            null_stdio()?
                        }
                        false => stdio,
                    };
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

    /// The exec's process runs its program: tell the client (with the pty master an
    /// external runtime sent to `console`), or, when the client is already gone, end it.
    pub fn exec_stream_started(&mut self, n: u64, console: Option<UnixListener>) {
        let Some(e) = self.execs.get_mut(&n).filter(|e| !e.answered) else {
            return;
        };
        let master = match console.map(|l| l.accept().and_then(|(conn, _)| sys::recv_fd(&conn))) {
            None => None,
            Some(Ok(fd)) => Some(fd),
            Some(Err(err)) => {
                let bin = e.oci.as_ref().map(|c| c.bin().display().to_string());
                let msg = format!("receiving the tty from {}: {err}", bin.unwrap_or_default());
                return self.exec_failed(n, msg);
            }
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

fn null_stdio() -> Result<[OwnedFd; 3], String> {
    let null = || sys::dev_null().map_err(|e| format!("/dev/null: {e}"));
    Ok([null()?, null()?, null()?])
}
