//! Streaming sessions (exec, attach, port-forward) as the front doors see them, apart from
//! any transport. The CRI's Exec/Attach/PortForward RPCs validate a request and register
//! it with a [`StreamService`], which hands back the URL the client connects to; the
//! streaming server then opens a [`StdioSession`] (through [`ContainerRuntime`]) or a
//! connection (through [`PortForwarder`]) and carries its bytes over SPDY or WebSocket.
//! The Docker API's hijacked exec and attach use the same sessions.
//!
//! Sessions are plain file descriptors, so that this crate stays free of any async runtime:
//! the edge wraps them in whatever it reads and writes with.
//!
//! [`ContainerRuntime`]: crate::runtime::ContainerRuntime

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;

use crate::runtime::RuntimeError;

/// A new process in a running container, its stdio streamed.
#[derive(Debug, Clone)]
pub struct ExecStreamRequest {
    pub container_id: String,
    /// OCI `process` (args, env, cwd, user, capabilities...); `terminal` equals `tty`.
    pub process: serde_json::Value,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    /// Always false with a tty: the terminal merges both streams into stdout.
    pub stderr: bool,
}

/// Joining a running container's own stdio, held by its pod monitor.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub container_id: String,
    /// The container was created with a tty (its output is then all on stdout).
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Ends when the process (exec) or the container (attach) exits, with its exit code.
/// Dropping it ends the session: an exec's process still running is killed, an attacher
/// is detached (and with `stdin_once`, the container's stdin closed).
pub type ExitFuture = Pin<Box<dyn Future<Output = Result<i32, RuntimeError>> + Send>>;

/// Changes the size of a session's terminal.
#[async_trait]
pub trait TtyResizer: Send + Sync {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError>;
}

/// An exec or attach in progress: the byte ends a transport copies to and from.
pub struct StdioSession {
    /// Writes go to the process' stdin (with a tty: its terminal). Dropping it closes
    /// stdin (not with a tty, which stays open until the process ends).
    pub stdin: Option<OwnedFd>,
    /// Reads give the process' stdout (with a tty: the terminal's output); EOF once the
    /// process and everything it started has closed it.
    pub stdout: Option<OwnedFd>,
    /// None with a tty.
    pub stderr: Option<OwnedFd>,
    /// Present with a tty.
    pub resize: Option<Box<dyn TtyResizer>>,
    pub exit: ExitFuture,
}

impl std::fmt::Debug for StdioSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioSession")
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("tty", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// Connections into a pod's network namespace.
#[async_trait]
pub trait PortForwarder: Send + Sync {
    /// A TCP connection to `localhost:port` inside the network namespace pinned at `netns`
    /// (None: the node's own, for host-network pods). Tries 127.0.0.1, then ::1.
    async fn connect(
        &self,
        netns: Option<PathBuf>,
        port: u16,
    ) -> Result<std::net::TcpStream, RuntimeError>;
}

/// A validated streaming request, waiting for its client to connect.
#[derive(Debug, Clone)]
pub enum StreamRequest {
    Exec {
        pod_id: String,
        req: ExecStreamRequest,
    },
    Attach {
        pod_id: String,
        req: AttachRequest,
    },
    PortForward {
        pod_id: String,
        /// The pod's pinned network namespace; None for a host-network pod.
        netns: Option<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The streaming server is not running (disabled in the config, or failed to start).
    #[error("the streaming server is not available: {0}")]
    Unavailable(String),
}

/// Where validated requests are registered; answers the URL (with a single-use token that
/// expires) that the client must connect to.
pub trait StreamService: Send + Sync {
    fn register(&self, req: StreamRequest) -> Result<String, StreamError>;
}
