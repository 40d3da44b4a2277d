//! berthd's side of streamed exec and attach ([`ContainerRuntime::exec_stream`],
//! [`ContainerRuntime::attach`]): it makes the session's pipes itself, passes the far ends
//! to the pod's monitor with the request ([`crate::monitor::fdpass`]) and keeps the near
//! ends as the [`StdioSession`]. A tty exec's pty is made by the runtime inside the
//! container (berth's init, runc, crun alike); its master comes back with the answer. The monitor connection lives in the session's
//! `exit` future, which reads the exit code; dropping it closes the connection, which ends
//! the session (an exec's process is killed, an attacher detached).
//!
//! What a consumer (the streaming server, the Docker API) must respect:
//! - The fds are close-on-exec and non-blocking (wrap them in `tokio::io::unix::AsyncFd`,
//!   or `tokio::net::unix::pipe` for the pipes). A pty master (tty sessions: `stdout`, and
//!   `stdin` is a dup of it) reads EIO once the terminal's last process closed it: that is
//!   its end of stream, like EOF.
//! - Keep `exit` alive until stdout and stderr are drained: dropping it kills the exec's
//!   process (attach: detaches). Await `exit`, then read the outputs to their end. For
//!   attach the end comes at once (the monitor closes the pipes after the exit line);
//!   for exec it comes when every process holding the pipe is gone, so bound that drain
//!   (a background child may keep it open).
//! - Dropping `stdin` closes the process' stdin (not with a tty, whose input only ends with
//!   the process; send ^D). For attach it closes the container's stdin only when the
//!   container was created with `stdin_once`.
//!
//! [`ContainerRuntime::exec_stream`]: berth_core::runtime::ContainerRuntime::exec_stream
//! [`ContainerRuntime::attach`]: berth_core::runtime::ContainerRuntime::attach

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use async_trait::async_trait;
use berth_core::runtime::RuntimeError;
use berth_core::stream::{AttachRequest, ExecStreamRequest, StdioSession, TtyResizer};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::monitor::fdpass;
use crate::monitor::protocol::{Request, Response};

/// How long the monitor may take to start a session.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

fn failed(step: &'static str) -> impl Fn(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::failed(step, e)
}

fn nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

/// A pipe: (read end, write end), close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe2(OFlag::O_CLOEXEC)?)
}

/// Starts a process with streamed stdio in a container; `stream` is connected to the
/// pod's monitor.
pub async fn exec_stream(
    stream: UnixStream,
    req: &ExecStreamRequest,
) -> Result<StdioSession, RuntimeError> {
    let id = &req.container_id;
    if req.tty && req.stderr {
        return Err(RuntimeError::InvalidArgument(
            "exec: tty and stderr cannot both be set (a terminal merges stderr into stdout)".into(),
        ));
    }
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(RuntimeError::InvalidArgument(
            "exec: one of stdin, stdout or stderr must be set".into(),
        ));
    }
    let io = failed("exec");
    let mut session = StdioSession {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
        exit: Box::pin(async { Ok(0) }),
    };
    // The process' fds 0, 1, 2, closed here once they were sent. A terminal is made by
    // the runtime inside the container (as runc does): nothing is sent, its master comes
    // back with the answer.
    let child: Vec<OwnedFd> = if req.tty {
        Vec::new()
    } else {
        let stdin = if req.stdin {
            let (r, w) = pipe().map_err(&io)?;
            nonblocking(&w).map_err(&io)?;
            session.stdin = Some(w);
            r
        } else {
            dev_null().map_err(&io)?
        };
        let output = |want: bool, keep: &mut Option<OwnedFd>| {
            if !want {
                return dev_null();
            }
            let (r, w) = pipe()?;
            nonblocking(&r)?;
            *keep = Some(r);
            Ok(w)
        };
        let stdout = output(req.stdout, &mut session.stdout).map_err(&io)?;
        let stderr = output(req.stderr, &mut session.stderr).map_err(&io)?;
        vec![stdin, stdout, stderr]
    };
    let wire = Request::ExecStream {
        id: id.clone(),
        process: req.process.clone(),
        tty: req.tty,
    };
    let raw: Vec<RawFd> = child.iter().map(AsRawFd::as_raw_fd).collect();
    let conn = start(stream, &wire, &raw, id).await;
    drop(child);
    let mut conn = conn?;
    if req.tty {
        let master = conn.fds.pop().ok_or_else(|| {
            RuntimeError::failed(
                "exec",
                format!("container {id}: the runtime sent no terminal for the tty exec"),
            )
        })?;
        nonblocking(&master).map_err(&io)?;
        session.stdin = match req.stdin {
            true => Some(master.try_clone().map_err(&io)?),
            false => None,
        };
        session.resize = Some(Box::new(PtyResizer {
            master: master.try_clone().map_err(&io)?,
        }));
        session.stdout = Some(master);
    }
    conn.fds.clear();
    session.exit = exit_future(conn, id.clone());
    Ok(session)
}

/// Joins a running container's stdio; `stream` is connected to the pod's monitor, `sock`
/// is its socket (the resizer connects there).
pub async fn attach(
    stream: UnixStream,
    req: &AttachRequest,
    sock: PathBuf,
) -> Result<StdioSession, RuntimeError> {
    let id = &req.container_id;
    // A terminal has no stderr of its own.
    let want_err = req.stderr && !req.tty;
    if !(req.stdin || req.stdout || want_err) {
        return Err(RuntimeError::InvalidArgument(
            "attach: one of stdin, stdout or stderr must be set".into(),
        ));
    }
    let io = failed("attach");
    let mut session = StdioSession {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
        exit: Box::pin(async { Ok(0) }),
    };
    // The monitor's ends, in the protocol's order: stdin, stdout, stderr.
    let mut theirs = Vec::new();
    if req.stdin {
        let (r, w) = pipe().map_err(&io)?;
        nonblocking(&w).map_err(&io)?;
        session.stdin = Some(w);
        theirs.push(r);
    }
    for (want, keep) in [
        (req.stdout, &mut session.stdout),
        (want_err, &mut session.stderr),
    ] {
        if want {
            let (r, w) = pipe().map_err(&io)?;
            nonblocking(&r).map_err(&io)?;
            *keep = Some(r);
            theirs.push(w);
        }
    }
    if req.tty {
        session.resize = Some(Box::new(AttachResizer {
            sock,
            id: id.clone(),
        }));
    }
    let wire = Request::Attach {
        id: id.clone(),
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: want_err,
    };
    let raw: Vec<RawFd> = theirs.iter().map(AsRawFd::as_raw_fd).collect();
    let conn = start(stream, &wire, &raw, id).await;
    drop(theirs);
    let mut conn = conn?;
    conn.fds.clear();
    session.exit = exit_future(conn, id.clone());
    Ok(session)
}

/// Sends the request with `fds` and reads the first answer; returns the connection, on
/// which the exit comes.
async fn start(
    stream: UnixStream,
    req: &Request,
    fds: &[RawFd],
    id: &str,
) -> Result<Conn, RuntimeError> {
    let io = failed("pod monitor");
    let mut line = serde_json::to_vec(req).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    let run = async {
        let mut stream = stream;
        // The descriptors ride on the first bytes; the rest of the line follows plainly.
        let sent = loop {
            stream.writable().await.map_err(&io)?;
            match stream.try_io(Interest::WRITABLE, || fdpass::send(&stream, &line, fds)) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(io(e)),
            }
        };
        stream.write_all(&line[sent..]).await.map_err(&io)?;
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            fds: Vec::new(),
            exit_code: None,
        };
        let resp = conn.read_answer(id).await?.into_result(id)?;
        conn.exit_code = resp.exit_code;
        Ok(conn)
    };
    tokio::time::timeout(START_TIMEOUT, run)
        .await
        .map_err(|_| RuntimeError::failed("pod monitor", "no answer within 90s"))?
}

/// A session's connection to the monitor. Lines are read with recvmsg, so descriptors that
/// come with an answer (an external runtime's pty master) are kept.
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// The exit came with the first answer.
    exit_code: Option<i32>,
}

impl Conn {
    async fn read_answer(&mut self, id: &str) -> Result<Response, RuntimeError> {
        let io = failed("pod monitor");
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                return serde_json::from_slice(&line[..nl]).map_err(|e| {
                    let text = String::from_utf8_lossy(&line);
                    io(std::io::Error::other(format!("bad answer {text:?}: {e}")))
                });
            }
            self.stream.readable().await.map_err(&io)?;
            let mut chunk = [0u8; 4096];
            let read = self.stream.try_io(Interest::READABLE, || {
                fdpass::recv(&self.stream, &mut chunk, &mut self.fds)
            });
            match read {
                Ok(0) => {
                    return Err(RuntimeError::failed(
                        "pod monitor",
                        format!("container {id}: the monitor closed the session without answering"),
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(io(e)),
            }
        }
    }
}

fn exit_future(mut conn: Conn, id: String) -> berth_core::stream::ExitFuture {
    Box::pin(async move {
        if let Some(code) = conn.exit_code {
            return Ok(code);
        }
        let resp = conn.read_answer(&id).await?.into_result(&id)?;
        resp.exit_code.ok_or_else(|| {
            RuntimeError::failed(
                "pod monitor",
                format!("container {id}: answer without exit code"),
            )
        })
    })
}

/// An exec's terminal: berthd holds its master (made in the container).
struct PtyResizer {
    master: OwnedFd,
}

#[async_trait]
impl TtyResizer for PtyResizer {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        crate::pty::set_winsize(&self.master, width, height)
            .map_err(|e| RuntimeError::failed("resize", e))
    }
}

/// A container's terminal: its monitor holds the master.
struct AttachResizer {
    sock: PathBuf,
    id: String,
}

#[async_trait]
impl TtyResizer for AttachResizer {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let io = failed("resize");
        let stream = {
            let addr = crate::sockpath::SockPath::new(&self.sock).map_err(&io)?;
            UnixStream::connect(addr.path()).await.map_err(&io)?
        };
        let req = Request::Resize {
            id: self.id.clone(),
            width,
            height,
        };
        start(stream, &req, &[], &self.id).await.map(drop)
    }
}
