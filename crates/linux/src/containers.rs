//! The real [`ContainerRuntime`]: one monitor process per pod (see [`crate::monitor`]),
//! found at `<run_dir>/pods/<pod id>/monitor/monitor.sock` or started on first use. berthd
//! keeps no connection: every call connects, sends one JSON line and reads the answer, so
//! a restarted berthd reattaches to running pods just by using their sockets. When a
//! pod's monitor is gone, container state comes from the records on disk.
//!
//! A container's CRI runtime handler picks what sets it up: "" and "berth" are berth's
//! own runtime (`<exe> init`), other names the external OCI runtimes (runc, crun) given
//! by [`LinuxContainerRuntime::with_oci_runtimes`]. The monitor runs them all the same way.
//!
//! Streamed exec and attach keep their connection for the session's life (see
//! [`crate::sessions`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_core::runtime::{
    ContainerRuntime, CreateRequest, ExecOutput, ExecRequest, ProcessState, ProcessStatus,
    Resources, RuntimeError,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::monitor::MonitorArgs;
use crate::monitor::protocol::{CONTAINERS, PID_FILE, Request, Response, SOCKET};
use crate::monitor::records;

/// Bound on calls that should answer promptly (the monitor's own init timeout is 60 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a new monitor may take to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LinuxContainerRuntime {
    run_dir: PathBuf,
    /// Runs container inits (`<exe> init ...`); monitors are given it.
    exe: PathBuf,
    /// Runs the monitors (`<monitor_exe> monitor ...`): berthd itself, or a small binary
    /// that dispatches the same entry points and costs less memory per pod.
    monitor_exe: PathBuf,
    /// External OCI runtimes by handler name.
    oci_runtimes: BTreeMap<String, PathBuf>,
    /// Monitor starts are rare and quick; one at a time keeps two from racing for a pod.
    starting: tokio::sync::Mutex<()>,
}

/// Why no monitor answered.
enum Conn {
    NoMonitor,
    Err(RuntimeError),
}

impl From<RuntimeError> for Conn {
    fn from(e: RuntimeError) -> Self {
        Conn::Err(e)
    }
}

impl LinuxContainerRuntime {
    /// `berthd_exe` is run as `<exe> monitor ...` and, by the monitors, `<exe> init ...`.
    pub fn new(run_dir: PathBuf, berthd_exe: PathBuf) -> Self {
        Self {
            run_dir,
            monitor_exe: berthd_exe.clone(),
            exe: berthd_exe,
            oci_runtimes: BTreeMap::new(),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    /// Handler name → binary of a runc-compatible OCI runtime (config
    /// `runtime.oci_runtimes`), for containers whose pod names that handler.
    pub fn with_monitor_exe(mut self, exe: PathBuf) -> Self {
        self.monitor_exe = exe;
        self
    }

    pub fn with_oci_runtimes(mut self, runtimes: BTreeMap<String, PathBuf>) -> Self {
        self.oci_runtimes = runtimes;
        self
    }

    /// The binary of `handler`: None for berth's own runtime.
    fn runtime_of(&self, handler: &str) -> Result<Option<String>, RuntimeError> {
        if matches!(handler, "" | "berth") {
            return Ok(None);
        }
        match self.oci_runtimes.get(handler) {
            Some(bin) => Ok(Some(bin.to_string_lossy().into_owned())),
            None => Err(RuntimeError::InvalidArgument(format!(
                "handler {handler:?} has no OCI runtime (runtime.oci_runtimes in berth.toml)"
            ))),
        }
    }

    /// `<run_dir>/pods/<pod id>/monitor`.
    pub fn monitor_dir(&self, pod_id: &str) -> PathBuf {
        self.run_dir.join("pods").join(pod_id).join("monitor")
    }

    /// Connects to the pod's monitor; starts it when `start` (a create) or when its dir
    /// exists but nothing serves it (it died: a new one recovers its containers).
    async fn connect(&self, pod_id: &str, start: bool) -> Result<UnixStream, Conn> {
        let dir = self.monitor_dir(pod_id);
        let sock = dir.join(SOCKET);
        // The socket path may exceed sockaddr_un's 108 bytes under a long run dir; the
        // directory may not exist before the monitor is started, so resolve it each time.
        let connect = || async {
            let addr = crate::sockpath::SockPath::new(&sock)?;
            UnixStream::connect(addr.path()).await
        };
        if let Ok(s) = connect().await {
            return Ok(s);
        }
        if !start && !dir.join(CONTAINERS).is_dir() {
            return Err(Conn::NoMonitor);
        }
        let _guard = self.starting.lock().await;
        if let Ok(s) = connect().await {
            return Ok(s);
        }
        self.start_monitor(pod_id, &dir).await?;
        connect().await.map_err(|e| {
            Conn::Err(RuntimeError::failed(
                "connect to pod monitor",
                format!("{}: {e}", dir.join(SOCKET).display()),
            ))
        })
    }

    async fn start_monitor(&self, pod_id: &str, dir: &Path) -> Result<(), RuntimeError> {
        let step = "start pod monitor";
        let args = MonitorArgs {
            pod: pod_id.to_string(),
            dir: dir.to_path_buf(),
            exe: self.exe.clone(),
        };
        let run = tokio::process::Command::new(&self.monitor_exe)
            .args(args.to_args())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .output();
        let out = tokio::time::timeout(START_TIMEOUT, run)
            .await
            .map_err(|_| RuntimeError::failed(step, "no answer within 10s"))?
            .map_err(|e| {
                RuntimeError::failed(step, format!("{}: {e}", self.monitor_exe.display()))
            })?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match line.strip_prefix("ready") {
            Some(_) if out.status.success() => Ok(()),
            _ => Err(RuntimeError::failed(
                step,
                format!(
                    "{} monitor: {line} ({})",
                    self.monitor_exe.display(),
                    out.status
                ),
            )),
        }
    }

    /// One request, one answer (with the exec output bytes when `exec`).
    async fn call(
        &self,
        pod_id: &str,
        id: &str,
        req: &Request,
        start: bool,
    ) -> Result<(Response, Vec<u8>, Vec<u8>), Conn> {
        let stream = self.connect(pod_id, start).await?;
        exchange(stream, pod_id, id, req).await
    }

    async fn call_state(
        &self,
        pod_id: &str,
        id: &str,
        req: &Request,
        start: bool,
    ) -> Result<ProcessState, Conn> {
        let call = self.call(pod_id, id, req, start);
        let (resp, _, _) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| RuntimeError::failed("pod monitor", "no answer within 90s"))??;
        resp.state
            .ok_or_else(|| Conn::Err(RuntimeError::failed("pod monitor", "answer without state")))
    }

    async fn call_ok(&self, pod_id: &str, id: &str, req: &Request) -> Result<(), Conn> {
        let call = self.call(pod_id, id, req, false);
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| RuntimeError::failed("pod monitor", "no answer within 90s"))??;
        Ok(())
    }

    fn disk_state(&self, pod_id: &str, id: &str) -> ProcessState {
        records::state_from_disk(&self.monitor_dir(pod_id), id).unwrap_or(UNKNOWN)
    }

    fn monitor_pid(&self, pod_id: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.monitor_dir(pod_id).join(PID_FILE)).ok()?;
        text.trim().parse().ok()
    }
}

/// Sends `req` on a fresh connection and reads the answer (and exec output bytes).
async fn exchange(
    stream: UnixStream,
    pod_id: &str,
    id: &str,
    req: &Request,
) -> Result<(Response, Vec<u8>, Vec<u8>), Conn> {
    let mut stream = BufReader::new(stream);
    let io = |e: std::io::Error| Conn::Err(RuntimeError::failed("pod monitor", e));
    let mut line = serde_json::to_vec(req).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    stream.get_mut().write_all(&line).await.map_err(io)?;
    let mut answer = String::new();
    stream.read_line(&mut answer).await.map_err(io)?;
    if answer.is_empty() {
        return Err(Conn::Err(RuntimeError::failed(
            "pod monitor",
            format!("pod {pod_id}: the monitor closed the connection without answering"),
        )));
    }
    let resp: Response = serde_json::from_str(&answer)
        .map_err(|e| io(std::io::Error::other(format!("bad answer {answer:?}: {e}"))))?;
    let resp = resp.into_result(id)?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    if let Some(h) = &resp.exec {
        out.resize(h.stdout_len, 0);
        err.resize(h.stderr_len, 0);
        stream.read_exact(&mut out).await.map_err(io)?;
        stream.read_exact(&mut err).await.map_err(io)?;
    }
    Ok((resp, out, err))
}

const UNKNOWN: ProcessState = ProcessState {
    status: ProcessStatus::Unknown,
    pid: None,
    started_at: None,
    finished_at: None,
    exit_code: None,
    oom_killed: false,
};

fn or_not_found<T>(r: Result<T, Conn>, id: &str) -> Result<T, RuntimeError> {
    match r {
        Ok(v) => Ok(v),
        Err(Conn::NoMonitor) => Err(RuntimeError::NotFound(id.to_string())),
        Err(Conn::Err(e)) => Err(e),
    }
}

#[async_trait]
impl ContainerRuntime for LinuxContainerRuntime {
    async fn create(&self, req: &CreateRequest) -> Result<ProcessState, RuntimeError> {
        let runtime = self.runtime_of(&req.handler)?;
        let wire = Request::Create {
            id: req.container_id.clone(),
            bundle: req.bundle.to_string_lossy().into_owned(),
            handler: req.handler.clone(),
            runtime,
            stdio: req.stdio.clone(),
        };
        let r = self
            .call_state(&req.pod_id, &req.container_id, &wire, true)
            .await;
        or_not_found(r, &req.container_id)
    }

    async fn start(&self, pod_id: &str, id: &str) -> Result<ProcessState, RuntimeError> {
        let req = Request::Start { id: id.into() };
        or_not_found(self.call_state(pod_id, id, &req, false).await, id)
    }

    async fn kill(
        &self,
        pod_id: &str,
        id: &str,
        signal: i32,
        all: bool,
    ) -> Result<(), RuntimeError> {
        let req = Request::Kill {
            id: id.into(),
            signal,
            all,
        };
        or_not_found(self.call_ok(pod_id, id, &req).await, id)
    }

    async fn wait(
        &self,
        pod_id: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<ProcessState, RuntimeError> {
        let req = Request::Wait { id: id.into() };
        match tokio::time::timeout(timeout, self.call(pod_id, id, &req, false)).await {
            Ok(Ok((resp, _, _))) => Ok(resp.state.unwrap_or(UNKNOWN)),
            Ok(Err(Conn::NoMonitor)) | Ok(Err(Conn::Err(RuntimeError::NotFound(_)))) => {
                Ok(self.disk_state(pod_id, id))
            }
            Ok(Err(Conn::Err(e))) => Err(e),
            // Timed out: the connection is dropped (the monitor forgets the waiter).
            Err(_) => self.state(pod_id, id).await,
        }
    }

    async fn state(&self, pod_id: &str, id: &str) -> Result<ProcessState, RuntimeError> {
        let req = Request::State { id: id.into() };
        match self.call_state(pod_id, id, &req, false).await {
            Ok(s) => Ok(s),
            Err(Conn::NoMonitor) | Err(Conn::Err(RuntimeError::NotFound(_))) => {
                Ok(self.disk_state(pod_id, id))
            }
            Err(Conn::Err(e)) => Err(e),
        }
    }

    async fn delete(&self, pod_id: &str, id: &str) -> Result<(), RuntimeError> {
        let req = Request::Delete { id: id.into() };
        match self.call_ok(pod_id, id, &req).await {
            Ok(()) | Err(Conn::NoMonitor) => Ok(()),
            Err(Conn::Err(RuntimeError::NotFound(_))) => Ok(()),
            Err(Conn::Err(e)) => Err(e),
        }
    }

    async fn exec_sync(&self, pod_id: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        let id = &req.container_id;
        let wire = Request::Exec {
            id: id.clone(),
            process: req.process.clone(),
            timeout_ms: req.timeout.map(|t| t.as_millis() as u64),
            max_output: req.max_output,
            drain_ms: req.drain.as_millis() as u64,
        };
        // The monitor enforces the timeout; this bound only guards against a hung monitor.
        let bound = req.timeout.unwrap_or(Duration::from_secs(86_400 * 365)) + CALL_TIMEOUT;
        let (resp, stdout, stderr) =
            match tokio::time::timeout(bound, self.call(pod_id, id, &wire, false)).await {
                Ok(r) => or_not_found(r, id)?,
                Err(_) => return Err(RuntimeError::failed("exec", "the pod monitor hung")),
            };
        let h = resp.exec.unwrap_or_default();
        Ok(ExecOutput {
            stdout,
            stderr,
            exit_code: h.exit_code,
            timed_out: h.timed_out,
        })
    }

    async fn update(
        &self,
        pod_id: &str,
        id: &str,
        resources: &Resources,
    ) -> Result<(), RuntimeError> {
        let req = Request::Update {
            id: id.into(),
            resources: resources.clone(),
        };
        or_not_found(self.call_ok(pod_id, id, &req).await, id)
    }

    async fn reopen_log(&self, pod_id: &str, id: &str) -> Result<(), RuntimeError> {
        let req = Request::ReopenLog { id: id.into() };
        or_not_found(self.call_ok(pod_id, id, &req).await, id)
    }

    async fn pause(&self, pod_id: &str, id: &str) -> Result<(), RuntimeError> {
        let req = Request::Pause { id: id.into() };
        or_not_found(self.call_ok(pod_id, id, &req).await, id)
    }

    async fn resume(&self, pod_id: &str, id: &str) -> Result<(), RuntimeError> {
        let req = Request::Resume { id: id.into() };
        or_not_found(self.call_ok(pod_id, id, &req).await, id)
    }

    async fn exec_stream(
        &self,
        pod_id: &str,
        req: &berth_core::stream::ExecStreamRequest,
    ) -> Result<berth_core::stream::StdioSession, RuntimeError> {
        let stream = or_not_found(self.connect(pod_id, false).await, &req.container_id)?;
        crate::sessions::exec_stream(stream, req).await
    }

    async fn attach(
        &self,
        pod_id: &str,
        req: &berth_core::stream::AttachRequest,
    ) -> Result<berth_core::stream::StdioSession, RuntimeError> {
        let stream = or_not_found(self.connect(pod_id, false).await, &req.container_id)?;
        let sock = self.monitor_dir(pod_id).join(SOCKET);
        crate::sessions::attach(stream, req, sock).await
    }

    async fn release_pod(&self, pod_id: &str) -> Result<(), RuntimeError> {
        let dir = self.monitor_dir(pod_id);
        if !dir.exists() {
            return Ok(());
        }
        // A dead monitor is restarted here: it recovers the containers left on disk, so
        // the shutdown below still kills them and removes their cgroups.
        let stream = match self.connect(pod_id, false).await {
            Ok(s) => Some(s),
            Err(Conn::NoMonitor) => None,
            Err(Conn::Err(e)) => return Err(e),
        };
        let pid = self.monitor_pid(pod_id);
        if let Some(stream) = stream {
            let req = Request::Shutdown { kill: true };
            let call = exchange(stream, pod_id, "", &req);
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(_)) | Ok(Err(Conn::NoMonitor)) => {}
                Ok(Err(Conn::Err(e))) => return Err(e),
                Err(_) => return Err(RuntimeError::failed("release pod", "no answer within 90s")),
            }
        }
        // The monitor answers, then exits: wait for it so nothing of the pod lingers.
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while records::live_start_time(pid).is_some() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::failed(
                "release pod",
                format!("removing {}: {e}", dir.display()),
            )),
        }
    }
}
