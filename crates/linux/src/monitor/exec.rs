//! exec_sync: an extra process in a running container, started by
//! `<exe> init --exec --pid <container pid> --process <file> [--cgroup <path>] --bundle <dir>`.
//! Its stdout and stderr are collected (capped per stream) and sent back with the exit code
//! once it ended and both streams reached EOF, or when the timeout killed it. Processes it
//! left in the background may keep the streams open: after the exit they get `drain` to
//! close them, then the exec fails with containerd's "failed to drain exec process" (never
//! a success with output cut short, never a wait until the timeout).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::channel::{Channel, InitMsg};
use super::container::Phase;
use super::log::Stream;
use super::oci::{Helper, OciCli};
use super::protocol::{ErrorKind, ExecHeader, Response};
use super::records;
use super::server::Monitor;
use super::sys;

pub struct Exec {
    pub client: u64,
    pub init_pid: i32,
    pub pid: Option<i32>,
    pub sock: Option<Channel>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    out: Vec<u8>,
    err: Vec<u8>,
    max: usize,
    /// The request's timeout until the process exits, then the end of the drain.
    pub deadline: Option<Instant>,
    timed_out: bool,
    /// How long the output may take to reach EOF after the exit.
    drain: Duration,
    /// The exit code and time, once the process exited (its output may still be draining).
    exited: Option<(i32, Instant)>,
    /// `exec-<n>` (its process file's name) and the container, for errors.
    name: String,
    container: String,
    pub process_file: PathBuf,
    /// Run by an external runtime's `exec --detach` (its PID file: `process_file` with
    /// extension "pid").
    pub oci: Option<OciCli>,
    /// A streamed exec ([`super::exec_stream`]): its stdio is the client's, answered
    /// twice (started, exited).
    pub stream: bool,
    /// A streamed exec's client was told it runs.
    pub answered: bool,
    /// External runtime with a tty: where its `exec` sends the pty master (passed on to
    /// the client).
    pub console: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    /// berth's init with a tty: the pty master it made in the container (passed on to the
    /// client once the process runs).
    pub master: Option<OwnedFd>,
}

impl Exec {
    /// A streamed exec: no output is collected (the process writes to the client's fds).
    pub fn streamed(
        client: u64,
        container: &str,
        init_pid: i32,
        sock: Option<Channel>,
        process_file: PathBuf,
        oci: Option<OciCli>,
    ) -> Self {
        let name = process_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Exec {
            client,
            init_pid,
            pid: None,
            sock,
            stdout: None,
            stderr: None,
            out: Vec::new(),
            err: Vec::new(),
            max: 0,
            deadline: None,
            timed_out: false,
            // The client reads the output itself: nothing to drain here.
            drain: Duration::ZERO,
            exited: None,
            name,
            container: container.to_string(),
            process_file,
            oci,
            stream: true,
            answered: false,
            console: None,
            master: None,
        }
    }

    fn pump(&mut self, stream: Stream) {
        let (fd, buf) = match stream {
            Stream::Stdout => (&mut self.stdout, &mut self.out),
            Stream::Stderr => (&mut self.stderr, &mut self.err),
        };
        let Some(f) = fd.as_ref() else {
            return;
        };
        // Read everything (the process must never block on a full pipe), keep the cap.
        let (data, eof) = sys::read_available(f, 1 << 20);
        let room = self.max.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        if eof {
            *fd = None;
        }
    }
}

impl Monitor {
    pub fn exec(
        &mut self,
        client: u64,
        id: &str,
        process: &serde_json::Value,
        timeout_ms: Option<u64>,
        max_output: usize,
        drain_ms: u64,
    ) -> Option<Response> {
        let Some(c) = self.containers.get(id) else {
            return Some(Response::not_found(id));
        };
        let (true, Some(pid)) = (c.phase == Phase::Running && c.alive(), c.rec.pid) else {
            return Some(Response::error(
                ErrorKind::FailedPrecondition,
                "is not running",
            ));
        };
        let cgroup = c.rec.cgroups_path.clone();
        let bundle = c.rec.bundle.clone();
        let cli = OciCli::of(&self.dir, &c.rec);
        let n = self.next_id();
        let file = records::container_dir(&self.dir, id).join(format!("exec-{n}.json"));
        let captured = || sys::child_stdio(false).map_err(|e| format!("creating stdio: {e}"));
        let spawned = match &cli {
            Some(cli) => records::write_json(&file, process)
                .map_err(|e| format!("writing {}: {e}", file.display()))
                .and_then(|()| captured())
                .and_then(|p| {
                    let pid = self.spawn_oci_exec(cli, id, &file, p.child, None)?;
                    Ok((pid, None, p.stdout, p.stderr))
                }),
            None => captured().and_then(|p| {
                let (pid, sock) = self.spawn_exec(&file, pid, cgroup, &bundle, process, p.child)?;
                Ok((pid, Some(sock), p.stdout, p.stderr))
            }),
        };
        match spawned {
            Ok((init_pid, sock, stdout, stderr)) => {
                if cli.is_some() {
                    self.helpers.insert(init_pid, Helper::Exec(n));
                }
                let e = Exec {
                    client,
                    init_pid,
                    pid: None,
                    sock,
                    stdout: Some(stdout),
                    stderr,
                    out: Vec::new(),
                    err: Vec::new(),
                    max: max_output,
                    deadline: timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
                    timed_out: false,
                    drain: Duration::from_millis(drain_ms),
                    exited: None,
                    name: format!("exec-{n}"),
                    container: id.to_string(),
                    process_file: file,
                    oci: cli,
                    stream: false,
                    answered: false,
                    console: None,
                    master: None,
                };
                self.execs.insert(n, e);
                None
            }
            Err(msg) => {
                let _ = std::fs::remove_file(&file);
                Some(Response::error(ErrorKind::Failed, msg))
            }
        }
    }

    /// Spawns `<exe> init --exec` with `stdio` as its fds 0-2; returns its PID and the
    /// socket its messages come on.
    pub fn spawn_exec(
        &self,
        file: &std::path::Path,
        pid: i32,
        cgroup: Option<String>,
        bundle: &str,
        process: &serde_json::Value,
        stdio: [OwnedFd; 3],
    ) -> Result<(i32, Channel), String> {
        records::write_json(file, process)
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let theirs: OwnedFd = theirs.into();
        let mut args = vec![
            "init".to_string(),
            "--exec".into(),
            "--pid".into(),
            pid.to_string(),
            "--process".into(),
            file.to_string_lossy().into_owned(),
            // The bundle gives the exec the container's seccomp profile.
            "--bundle".into(),
            bundle.to_string(),
        ];
        if let Some(cg) = cgroup {
            args.extend(["--cgroup".to_string(), cg]);
        }
        let init_pid = sys::spawn_with_fd3(&self.exe, &args, stdio, &theirs)
            .map_err(|e| format!("spawning {} init --exec: {e}", self.exe.display()))?;
        let sock = Channel::new(ours).map_err(|e| format!("sync socket: {e}"))?;
        Ok((init_pid, sock))
    }

    pub fn exec_sock_event(&mut self, n: u64) {
        let Some(ch) = self.execs.get_mut(&n).and_then(|e| e.sock.as_mut()) else {
            return;
        };
        let (msgs, eof) = ch.read();
        // An exit reaped before its pid was read: applied after the whole batch, because a
        // failed exec's Error (and its exit 127) may come right behind the pid.
        let mut reaped = None;
        for msg in msgs {
            let Some(e) = self.execs.get_mut(&n) else {
                return;
            };
            match msg {
                InitMsg::Pid { pid } if pid > 0 && e.pid.is_none() => {
                    e.pid = Some(pid);
                    reaped = self.take_unclaimed(pid);
                }
                InitMsg::Console => e.master = e.sock.as_mut().and_then(Channel::take_fd),
                InitMsg::Error { message } => return self.exec_failed(n, message),
                _ => {}
            }
        }
        if let Some(code) = reaped {
            return self.exec_exited(n, code);
        }
        let Some(e) = self.execs.get_mut(&n) else {
            return;
        };
        if eof {
            e.sock = None;
            if e.pid.is_none() {
                self.exec_failed(
                    n,
                    "the exec init exited without starting the process".into(),
                );
            } else if e.stream {
                // The socket is close-on-exec: EOF means the user's program runs.
                let master = e.master.take();
                self.exec_stream_started(n, master);
            }
        }
    }

    pub fn exec_failed(&mut self, n: u64, message: String) {
        let Some(e) = self.execs.remove(&n) else {
            return;
        };
        let _ = sys::kill(e.pid.unwrap_or(e.init_pid), libc::SIGKILL);
        if let Some((_, path)) = &e.console {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(&e.process_file);
        let _ = std::fs::remove_file(e.process_file.with_extension("pid"));
        let msg = format!("exec failed: {message}");
        self.reply(e.client, &Response::error(ErrorKind::Failed, msg), &[]);
    }

    pub fn exec_output_event(&mut self, n: u64, stream: Stream) {
        let Some(e) = self.execs.get_mut(&n) else {
            return;
        };
        e.pump(stream);
        if e.exited.is_some() && e.stdout.is_none() && e.stderr.is_none() {
            self.exec_done(n);
        }
    }

    /// The process ended: answer once its output is drained (at once after a timeout kill,
    /// or when both streams are already at EOF), else wait up to `drain`, never past the
    /// request's own deadline.
    pub fn exec_exited(&mut self, n: u64, code: i32) {
        let Some(e) = self.execs.get_mut(&n) else {
            return;
        };
        if e.exited.is_some() {
            return;
        }
        e.exited = Some((code, Instant::now()));
        e.pump(Stream::Stdout);
        e.pump(Stream::Stderr);
        if e.timed_out || (e.stdout.is_none() && e.stderr.is_none()) {
            return self.exec_done(n);
        }
        let until = Instant::now() + e.drain;
        e.deadline = Some(e.deadline.map_or(until, |d| d.min(until)));
    }

    /// Answers with the exit code and the output.
    fn exec_done(&mut self, n: u64) {
        let Some(mut e) = self.execs.remove(&n) else {
            return;
        };
        let code = e.exited.map_or(-1, |(code, _)| code);
        // What is left in the pipes (after a timeout kill, descendants may hold them).
        e.pump(Stream::Stdout);
        e.pump(Stream::Stderr);
        let _ = std::fs::remove_file(&e.process_file);
        let _ = std::fs::remove_file(e.process_file.with_extension("pid"));
        if e.stream {
            if !e.answered {
                // It ended before its start was seen: both answers, as always.
                self.reply_streaming(e.client, &Response::ok());
            }
            return self.reply(e.client, &Response::exited(code), &[]);
        }
        let header = ExecHeader {
            exit_code: code,
            timed_out: e.timed_out,
            stdout_len: e.out.len(),
            stderr_len: e.err.len(),
        };
        let resp = Response {
            ok: true,
            exec: Some(header),
            ..Default::default()
        };
        self.reply(e.client, &resp, &[&e.out, &e.err]);
    }

    pub fn exec_deadlines(&mut self, now: Instant) {
        let mut undrained = Vec::new();
        for (n, e) in self.execs.iter_mut() {
            if e.deadline.is_none_or(|d| d > now) {
                continue;
            }
            e.deadline = None;
            if e.exited.is_some() {
                undrained.push(*n);
            } else {
                e.timed_out = true;
                let _ = sys::kill(e.pid.unwrap_or(e.init_pid), libc::SIGKILL);
            }
        }
        for n in undrained {
            self.exec_undrained(n);
        }
    }

    /// The process exited but its output is still open past the drain time: fail (the
    /// background processes holding it are left alone, as containerd does).
    fn exec_undrained(&mut self, n: u64) {
        let Some(e) = self.execs.remove(&n) else {
            return;
        };
        let _ = std::fs::remove_file(&e.process_file);
        let _ = std::fs::remove_file(e.process_file.with_extension("pid"));
        let msg = format!(
            "failed to drain exec process \"{}\" io: stdout/stderr still open {} ms after the \
             process exited with code {} in container {} (processes it started in the \
             background keep them open; runtime.exec_drain_timeout_secs bounds the wait)",
            e.name,
            e.exited.map_or(0, |(_, at)| at.elapsed().as_millis()),
            e.exited.map_or(-1, |(code, _)| code),
            e.container
        );
        self.reply(e.client, &Response::error(ErrorKind::Failed, msg), &[]);
    }
}
