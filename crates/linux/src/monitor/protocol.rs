//! The wire protocol between berthd ([`crate::containers`]) and a pod's monitor, over
//! `<monitor dir>/monitor.sock` (unix stream): one JSON object per line each way.
//!
//! A client sends one request and reads one response before sending the next; berthd opens
//! a connection per request, so dropping a future (a wait that timed out) just closes it.
//! The exec response is the only one followed by raw bytes: its JSON line carries
//! `stdout_len` and `stderr_len`, then that many bytes of stdout and of stderr follow.
//!
//! Streaming sessions ([`Request::ExecStream`], [`Request::Attach`]) carry file
//! descriptors: the request line is sent with SCM_RIGHTS ([`super::fdpass`]), the
//! descriptors attached to its first bytes.
//! - `exec_stream`: exactly 3, the process' fds 0, 1 and 2 (berthd opens /dev/null for the
//!   streams the client did not ask for); with a tty none: the runtime makes the pty inside
//!   the container and its master comes back with the `{"ok":true}` answer.
//! - `attach`: one per stream asked for, in the order stdin, stdout, stderr: the read end
//!   of a pipe whose write end berthd keeps (stdin), the write ends of pipes whose read ends
//!   berthd keeps (stdout, stderr).
//!
//! Both answer `{"ok":true}` once the session runs (exec: the process runs its program;
//! a program that cannot be run is an error answer), then a second line
//! `{"ok":true,"exit_code":N}` when the exec'd process (or the container) exits. Closing
//! the connection before that ends the session: a streamed exec's process is SIGKILLed, an
//! attacher detached.

use berth_core::runtime::{ProcessState, RuntimeError, StdioConfig};
use serde::{Deserialize, Serialize};

/// Socket, pid file and per-container state live in the monitor dir under these names.
pub const SOCKET: &str = "monitor.sock";
pub const PID_FILE: &str = "monitor.pid";
pub const LOG_FILE: &str = "monitor.log";
pub const CONTAINERS: &str = "containers";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Spawns the OCI init for `bundle`; answers once it is ready (process created, not
    /// yet running the user's program).
    Create {
        id: String,
        bundle: String,
        #[serde(default)]
        handler: String,
        /// Binary of the external OCI runtime (runc, crun) that runs this container;
        /// none for berth's own runtime (handler "" / "berth").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
        stdio: StdioConfig,
    },
    /// Lets the created process exec; answers once it did (or failed to).
    Start {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    State {
        id: String,
    },
    /// Answers once the container has exited (at once if it already has).
    Wait {
        id: String,
    },
    /// Runs an extra process in the container and answers with its output.
    Exec {
        id: String,
        process: serde_json::Value,
        /// Milliseconds; none waits for ever.
        #[serde(default)]
        timeout_ms: Option<u64>,
        max_output: usize,
        /// Milliseconds the output may take to reach EOF after the process exited.
        #[serde(default)]
        drain_ms: u64,
    },
    /// Applies OCI `linux.resources` to the container's cgroup.
    Update {
        id: String,
        resources: serde_json::Value,
    },
    /// Freezes the running container's processes (`docker pause`).
    Pause {
        id: String,
    },
    /// Thaws them again.
    Resume {
        id: String,
    },
    /// Closes and reopens the container's log file (after the kubelet rotated it).
    ReopenLog {
        id: String,
    },
    /// Forgets an exited (or never started) container: state dir, cgroup, pipes.
    Delete {
        id: String,
    },
    /// Exits the monitor. Without `kill` it refuses while containers exist; with it, it
    /// SIGKILLs and deletes every container first.
    Shutdown {
        #[serde(default)]
        kill: bool,
    },
    /// Ids of the containers the monitor knows.
    List,
    /// Runs an extra process in the container on the stdio passed along (3 fds; none with
    /// a tty, whose master comes with the answer).
    ExecStream {
        id: String,
        process: serde_json::Value,
        #[serde(default)]
        tty: bool,
    },
    /// Joins the container's stdio (one fd per stream asked for).
    Attach {
        id: String,
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    /// Sets the size of the container's terminal.
    Resize {
        id: String,
        width: u16,
        height: u16,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ProcessState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// The second answer of a streaming session: how its process (container) ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecHeader {
    pub exit_code: i32,
    pub timed_out: bool,
    pub stdout_len: usize,
    pub stderr_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    FailedPrecondition,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl Response {
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Default::default()
        }
    }

    pub fn with_state(state: ProcessState) -> Self {
        Response {
            ok: true,
            state: Some(state),
            ..Default::default()
        }
    }

    pub fn exited(code: i32) -> Self {
        Response {
            ok: true,
            exit_code: Some(code),
            ..Default::default()
        }
    }

    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(WireError {
                kind,
                message: message.into(),
            }),
            ..Default::default()
        }
    }

    pub fn not_found(id: &str) -> Self {
        Self::error(ErrorKind::NotFound, format!("container {id} not found"))
    }

    /// The error this response carries, as the port's error for container `id`.
    pub fn into_result(self, id: &str) -> Result<Response, RuntimeError> {
        if self.ok {
            return Ok(self);
        }
        let err = self.error.unwrap_or(WireError {
            kind: ErrorKind::Failed,
            message: "the monitor answered an error without a message".into(),
        });
        Err(match err.kind {
            ErrorKind::NotFound => RuntimeError::NotFound(id.to_string()),
            ErrorKind::InvalidArgument => RuntimeError::InvalidArgument(err.message),
            ErrorKind::FailedPrecondition => RuntimeError::FailedPrecondition {
                id: id.to_string(),
                message: err.message,
            },
            ErrorKind::Failed => RuntimeError::failed("pod monitor", err.message),
        })
    }
}
