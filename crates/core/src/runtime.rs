//! Containers as the CRI layer sees the node: the ports that run them. `berth-linux`
//! implements them (per-pod monitor + berth's own OCI runtime, or runc/crun as extra
//! handlers); `cri` drives them and keeps the records.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("container {id}: {message}")]
    FailedPrecondition { id: String, message: String },
    #[error("{step}: {message}")]
    Failed { step: &'static str, message: String },
}

impl RuntimeError {
    pub fn failed(step: &'static str, message: impl std::fmt::Display) -> Self {
        RuntimeError::Failed {
            step,
            message: message.to_string(),
        }
    }
}

/// Where a container's stdout/stderr go and how it is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioConfig {
    /// CRI log file (`<log_directory>/<log_path>`); None: output is discarded.
    pub log_path: Option<PathBuf>,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
}

/// What `ContainerRuntime::create` needs: an OCI bundle prepared by the caller.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub pod_id: String,
    pub container_id: String,
    /// Bundle directory: `config.json` (OCI runtime spec) and `rootfs/` (already mounted).
    pub bundle: PathBuf,
    /// Which OCI runtime runs it: "" / "berth" for berth's own, else a configured handler.
    pub handler: String,
    pub stdio: StdioConfig,
}

/// Runtime-side state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Created, process waiting for start.
    Created,
    Running,
    Exited,
    /// The runtime knows nothing of it (e.g. never created, or deleted).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    pub status: ProcessStatus,
    pub pid: Option<i32>,
    /// Nanoseconds since the epoch.
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// The kernel's OOM killer ended it.
    pub oom_killed: bool,
}

#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub container_id: String,
    /// OCI `process` (args, env, cwd, user, capabilities...) to run in the container.
    pub process: serde_json::Value,
    pub timeout: Option<Duration>,
    /// Output beyond this many bytes per stream is dropped (containerd: 16 MiB).
    pub max_output: usize,
    /// How long, after the process exited, its output may take to reach EOF (processes it
    /// left in the background may hold stdout/stderr open). Past it the exec fails with
    /// containerd's "failed to drain exec process" rather than answer cut output.
    pub drain: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    pub timed_out: bool,
}

/// Resources to apply live (OCI `linux.resources` JSON).
pub type Resources = serde_json::Value;

#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Creates the container's process (namespaces, rootfs, cgroup; not yet running).
    async fn create(&self, req: &CreateRequest) -> Result<ProcessState, RuntimeError>;
    /// Lets the created process exec its program.
    async fn start(&self, pod_id: &str, container_id: &str) -> Result<ProcessState, RuntimeError>;
    /// Sends a signal to the container's main process (and with `all`, every process).
    async fn kill(
        &self,
        pod_id: &str,
        container_id: &str,
        signal: i32,
        all: bool,
    ) -> Result<(), RuntimeError>;
    /// Waits until the container has exited or `timeout` passes; returns the state.
    async fn wait(
        &self,
        pod_id: &str,
        container_id: &str,
        timeout: Duration,
    ) -> Result<ProcessState, RuntimeError>;
    async fn state(&self, pod_id: &str, container_id: &str) -> Result<ProcessState, RuntimeError>;
    /// Releases the runtime's resources of an exited (or never started) container. Idempotent.
    async fn delete(&self, pod_id: &str, container_id: &str) -> Result<(), RuntimeError>;
    async fn exec_sync(&self, pod_id: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError>;
    async fn update(
        &self,
        pod_id: &str,
        container_id: &str,
        resources: &Resources,
    ) -> Result<(), RuntimeError>;
    async fn reopen_log(&self, pod_id: &str, container_id: &str) -> Result<(), RuntimeError>;
    /// Freezes every process of a running container (its cgroup's freezer), as
    /// `docker pause` does; signals stay pending until [`ContainerRuntime::resume`].
    async fn pause(&self, pod_id: &str, container_id: &str) -> Result<(), RuntimeError>;
    /// Thaws a paused container. Resuming one that is not frozen is fine.
    async fn resume(&self, pod_id: &str, container_id: &str) -> Result<(), RuntimeError>;
    /// Starts a process in a running container with its stdio streamed (see
    /// [`crate::stream`]); answers once it runs.
    async fn exec_stream(
        &self,
        pod_id: &str,
        req: &crate::stream::ExecStreamRequest,
    ) -> Result<crate::stream::StdioSession, RuntimeError>;
    /// Joins a running container's stdio. Several attachers may be joined at once.
    async fn attach(
        &self,
        pod_id: &str,
        req: &crate::stream::AttachRequest,
    ) -> Result<crate::stream::StdioSession, RuntimeError>;
    /// Ends the pod's monitor once the pod has no containers left. Idempotent.
    async fn release_pod(&self, pod_id: &str) -> Result<(), RuntimeError>;
}

/// A container's root filesystem: overlayfs of image snapshots + a writable layer.
#[async_trait]
pub trait Rootfs: Send + Sync {
    /// Mounts `lowers` (base layer first) + upper/work dirs under `dir` at `dir/rootfs`;
    /// keeps a mount that is already there (a container started again keeps its layer).
    async fn mount(
        &self,
        dir: &std::path::Path,
        lowers: &[PathBuf],
        readonly: bool,
    ) -> Result<PathBuf, RuntimeError>;
    /// Unmounts and deletes `dir` (upper layer included). Idempotent.
    async fn remove(&self, dir: &std::path::Path) -> Result<(), RuntimeError>;
}

/// Labels and annotations kept with records, sorted for stable output.
pub type Labels = BTreeMap<String, String>;
