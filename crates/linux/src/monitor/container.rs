//! One container in the monitor: its init (fd 3), its process, its stdio and log, and the
//! create → start → exit steps driven by the event loop.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_core::runtime::{ProcessState, ProcessStatus, StdioConfig};

use super::attach::{self, Attacher, StdinState};
use super::cgroups;
use super::channel::{Channel, MonitorMsg};
use super::log::{LineSplitter, LogFile, Stream};
use super::oci;
use super::protocol::{ErrorKind, Response};
use super::records::{self, ContainerRecord, ExitRecord};
use super::server::Monitor;
use super::sys;

/// How long an init may take to get a container ready, or to exec it.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Output read per wake-up, so one chatty container cannot starve the others.
const READ_BURST: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Creating,
    Created,
    Starting,
    Running,
    /// Exited; `exit` holds the record.
    Stopped,
    /// Creation failed; the client was told. Waits for delete.
    Failed,
}

pub struct Container {
    pub rec: ContainerRecord,
    pub phase: Phase,
    /// The init process the monitor spawned (exits once the container process exists).
    pub init_pid: i32,
    pub sock: Option<Channel>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    out_lines: LineSplitter,
    err_lines: LineSplitter,
    pub log: LogFile,
    pub exit: Option<ExitRecord>,
    /// The container process was reaped (or seen gone).
    pub reaped: bool,
    /// Recovered after a monitor restart: not our child, watched through a pidfd.
    pub pidfd: Option<OwnedFd>,
    pub pending_create: Option<u64>,
    pub pending_start: Option<u64>,
    pub waiters: Vec<u64>,
    pub pending_delete: Vec<u64>,
    pub deadline: Option<Instant>,
    /// External runtime with a tty: where its `create` sends the pty master.
    pub console: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    pub attachers: Vec<Attacher>,
    pub stdin_state: StdinState,
}

impl Container {
    pub fn new(rec: ContainerRecord, phase: Phase, log: LogFile) -> Self {
        Container {
            rec,
            phase,
            init_pid: 0,
            sock: None,
            stdout: None,
            stderr: None,
            stdin: None,
            out_lines: LineSplitter::new(Stream::Stdout),
            err_lines: LineSplitter::new(Stream::Stderr),
            log,
            exit: None,
            reaped: false,
            pidfd: None,
            pending_create: None,
            pending_start: None,
            waiters: Vec::new(),
            pending_delete: Vec::new(),
            deadline: None,
            console: None,
            attachers: Vec::new(),
            stdin_state: StdinState::default(),
        }
    }

    pub fn state(&self) -> ProcessState {
        let status = match self.phase {
            Phase::Creating | Phase::Created | Phase::Starting => ProcessStatus::Created,
            Phase::Running => ProcessStatus::Running,
            Phase::Stopped => ProcessStatus::Exited,
            Phase::Failed => ProcessStatus::Unknown,
        };
        ProcessState {
            status,
            pid: self.rec.pid,
            started_at: self.rec.started_at,
            finished_at: self.exit.map(|e| e.finished_at),
            exit_code: self.exit.map(|e| e.exit_code),
            oom_killed: self.exit.is_some_and(|e| e.oom_killed),
        }
    }

    /// Whether some process of the container may still run.
    pub fn alive(&self) -> bool {
        match self.phase {
            Phase::Creating => true,
            Phase::Stopped => false,
            _ => self.rec.pid.is_some() && !self.reaped,
        }
    }

    pub fn signal(&self, sig: i32, all: bool) -> Result<(), String> {
        if all {
            for pid in cgroups::procs(self.rec.cgroups_path.as_deref()) {
                let _ = sys::kill(pid, sig);
            }
        }
        let res = match (&self.pidfd, self.rec.pid) {
            (Some(fd), _) => sys::pidfd_kill(fd, sig),
            (None, Some(pid)) if !self.reaped => sys::kill(pid, sig),
            _ => Ok(()),
        };
        if self.phase == Phase::Creating && sig == libc::SIGKILL && self.init_pid > 0 {
            let _ = sys::kill(self.init_pid, sig);
        }
        res.map_err(|e| format!("signal {sig}: {e}"))
    }

    /// Logs (and fans out to attachers) what the output pipes hold; closes those that
    /// ended. Returns whether there may be more.
    pub fn pump(&mut self, stream: Stream) -> bool {
        let (fd, lines) = match stream {
            Stream::Stdout => (&mut self.stdout, &mut self.out_lines),
            Stream::Stderr => (&mut self.stderr, &mut self.err_lines),
        };
        let Some(f) = fd.as_ref() else {
            return false;
        };
        let (data, eof) = sys::read_available(f, READ_BURST);
        lines.feed(&data, &mut self.log);
        attach::fan_out(&mut self.attachers, &self.rec.id, stream, &data);
        if eof {
            lines.finish(&mut self.log);
            *fd = None;
        }
        !eof && data.len() >= READ_BURST
    }

    /// Flushes partial lines and closes the pipes (delete).
    pub fn close_stdio(&mut self) {
        self.pump(Stream::Stdout);
        self.pump(Stream::Stderr);
        self.out_lines.finish(&mut self.log);
        self.err_lines.finish(&mut self.log);
        self.stdout = None;
        self.stderr = None;
        self.stdin = None;
        self.sock = None;
        self.attachers.clear();
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Monitor {
    pub fn create(
        &mut self,
        client: u64,
        id: String,
        bundle: PathBuf,
        handler: String,
        runtime: Option<String>,
        stdio: StdioConfig,
    ) -> Option<Response> {
        if !valid_id(&id) {
            return Some(Response::error(
                ErrorKind::InvalidArgument,
                format!("invalid container id {id:?}"),
            ));
        }
        let external = oci::is_external(&handler);
        if external && (runtime.is_none() || !valid_id(&handler)) {
            return Some(Response::error(
                ErrorKind::InvalidArgument,
                format!("handler {handler:?} has no OCI runtime binary (runtime.oci_runtimes)"),
            ));
        }
        if let Some(c) = self.containers.get(&id) {
            // A retried create of the same bundle is answered with what exists.
            if c.rec.bundle == bundle.to_string_lossy() && c.phase != Phase::Failed {
                if c.phase == Phase::Creating {
                    return Some(Response::error(
                        ErrorKind::FailedPrecondition,
                        "is being created",
                    ));
                }
                return Some(Response::with_state(c.state()));
            }
            return Some(Response::error(
                ErrorKind::FailedPrecondition,
                "already exists in this pod's monitor; delete it first",
            ));
        }
        let spawned = match runtime.filter(|_| external) {
            Some(bin) => self.spawn_oci_create(&id, &bundle, handler, bin, stdio),
            None => self.spawn_init(&id, &bundle, handler, stdio),
        };
        match spawned {
            Ok(mut c) => {
                c.pending_create = Some(client);
                self.containers.insert(id, c);
                None
            }
            Err(msg) => {
                let _ = std::fs::remove_dir_all(records::container_dir(&self.dir, &id));
                Some(Response::error(ErrorKind::Failed, msg))
            }
        }
    }

    fn spawn_init(
        &mut self,
        id: &str,
        bundle: &std::path::Path,
        handler: String,
        stdio: StdioConfig,
    ) -> Result<Container, String> {
        let cgroups_path = cgroups::bundle_cgroups_path(bundle)?;
        let dir = records::container_dir(&self.dir, id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let log = LogFile::open(stdio.log_path.clone()).map_err(|e| {
            let p = stdio
                .log_path
                .as_deref()
                .unwrap_or(std::path::Path::new(""));
            format!("opening log file {}: {e}", p.display())
        })?;
        // With a tty the init makes the pty in the container and sends its master back
        // ([`InitMsg::Console`](super::channel::InitMsg)); until then there is no output.
        let (child, pipes) = match stdio.tty {
            true => (sys::null_stdio()?, None),
            false => {
                let p =
                    sys::child_stdio(stdio.stdin).map_err(|e| format!("creating stdio: {e}"))?;
                (p.child, Some((p.stdout, p.stderr, p.stdin)))
            }
        };
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let theirs: OwnedFd = theirs.into();
        let args = [
            "init".to_string(),
            "--bundle".into(),
            bundle.to_string_lossy().into_owned(),
            "--id".into(),
            id.to_string(),
        ];
        let init_pid = sys::spawn_with_fd3(&self.exe, &args, child, &theirs)
            .map_err(|e| format!("spawning {} init: {e}", self.exe.display()))?;
        let rec = ContainerRecord {
            version: 1,
            id: id.to_string(),
            bundle: bundle.to_string_lossy().into_owned(),
            handler,
            runtime: None,
            stdio,
            cgroups_path,
            pid: None,
            pid_start: None,
            created_at: records::now_ns(),
            started_at: None,
            oom_base: None,
        };
        let mut c = Container::new(rec, Phase::Creating, log);
        c.init_pid = init_pid;
        c.sock = Some(Channel::new(ours).map_err(|e| format!("sync socket: {e}"))?);
        if let Some((stdout, stderr, stdin)) = pipes {
            c.stdout = Some(stdout);
            c.stderr = stderr;
            c.stdin = stdin;
        }
        c.deadline = Some(Instant::now() + INIT_TIMEOUT);
        Ok(c)
    }

    pub fn start(&mut self, client: u64, id: &str) -> Option<Response> {
        let Some(c) = self.containers.get_mut(id) else {
            return Some(Response::not_found(id));
        };
        if c.rec.runtime.is_some() && c.phase == Phase::Created {
            return self.start_oci(client, id);
        }
        match c.phase {
            Phase::Created => {}
            Phase::Running => return Some(Response::with_state(c.state())),
            _ => {
                return Some(Response::error(
                    ErrorKind::FailedPrecondition,
                    format!("cannot start: it is {:?}", c.phase).to_lowercase(),
                ));
            }
        }
        let sent = match &mut c.sock {
            Some(ch) => ch.send(&MonitorMsg::Start).map_err(|e| e.to_string()),
            None => Err("its init is gone".into()),
        };
        if let Err(e) = sent {
            return Some(Response::error(ErrorKind::Failed, format!("starting: {e}")));
        }
        c.phase = Phase::Starting;
        c.pending_start = Some(client);
        c.deadline = Some(Instant::now() + INIT_TIMEOUT);
        None
    }

    pub fn output_event(&mut self, id: &str, stream: Stream) {
        if let Some(c) = self.containers.get_mut(id) {
            c.pump(stream);
        }
    }

    /// The container's process is gone: record it, answer whoever waits.
    pub fn container_exited(&mut self, id: &str, code: i32) {
        // Messages the init sent before the process died (ready, exec EOF) come first.
        self.init_sock_event(id);
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.reaped = true;
        c.pidfd = None;
        // An external runtime's `start` may be reaped after the process it started: the
        // process ran, so the start succeeded.
        let started = c.phase == Phase::Starting && c.rec.runtime.is_some();
        if started {
            c.rec.started_at = Some(records::now_ns());
            let dir = records::container_dir(&self.dir, id);
            let _ = records::write_json(&dir.join(records::STATE_FILE), &c.rec);
        }
        match c.phase {
            Phase::Creating => {
                let msg = format!("the container process exited ({code}) during creation");
                return self.fail_create(id, msg);
            }
            Phase::Failed | Phase::Stopped => {}
            _ => {
                // The container ends with its main process: what it left behind goes too.
                cgroups::kill_all(c.rec.cgroups_path.as_deref());
                c.pump(Stream::Stdout);
                c.pump(Stream::Stderr);
                let after = cgroups::oom_kill_count(c.rec.cgroups_path.as_deref());
                let exit = ExitRecord {
                    version: 1,
                    exit_code: code,
                    finished_at: records::now_ns(),
                    oom_killed: matches!((c.rec.oom_base, after), (Some(b), Some(a)) if a > b),
                };
                let dir = records::container_dir(&self.dir, id);
                if let Err(e) = records::write_json(&dir.join(records::EXIT_FILE), &exit) {
                    eprintln!("monitor: container {id}: writing exit record: {e}");
                }
                c.exit = Some(exit);
                c.phase = Phase::Stopped;
                c.deadline = None;
            }
        }
        let state = c.state();
        let start = c.pending_start.take();
        let waiters = std::mem::take(&mut c.waiters);
        let deletes = std::mem::take(&mut c.pending_delete);
        if let Some(client) = start {
            let resp = if started {
                Response::with_state(state.clone())
            } else {
                let msg = format!("the container process exited ({code}) while starting");
                Response::error(ErrorKind::Failed, msg)
            };
            self.reply(client, &resp, &[]);
        }
        for client in waiters {
            self.reply(client, &Response::with_state(state.clone()), &[]);
        }
        for client in deletes {
            let resp = self.finish_delete(id);
            self.reply(client, &resp, &[]);
        }
        self.attach_exited(id, code);
    }

    /// A recovered container (not our child) ended; its exit code is lost.
    pub fn pidfd_event(&mut self, id: &str) {
        self.container_exited(id, records::UNKNOWN_EXIT);
    }
}
