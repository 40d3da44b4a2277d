//! A Rust client of the Kubernetes streaming protocols (what crictl/kubectl speak to the URL a
//! CRI Exec/Attach/PortForward RPC returns), for integration tests and benches against a real
//! berthd. It follows client-go (`tools/remotecommand`, `tools/portforward`) so it is a
//! faithful reference:
//!
//! - exec/attach over SPDY: `POST` + `Upgrade: SPDY/3.1` offering v5..v1 channel protocols;
//!   streams opened in client-go's order (error, stdin, stdout, stderr unless tty, resize if
//!   tty), each waiting for its SYN_REPLY; the error stream carries a metav1.Status (v4+).
//! - exec/attach over WebSocket: channel-prefixed binary messages (0 stdin, 1 stdout,
//!   2 stderr, 3 error, 4 resize; v5 adds `[255, ch]` to close our side of a channel).
//! - port-forward over SPDY (error + data stream pair per connection, the error stream
//!   half-closed at once), over WebSocket (`?port=N`, channels 0/1, 2-byte LE port prefix on
//!   each channel's first message) and over the KEP-4006 tunnel (SPDY inside WebSocket).
//!
//! Like client-go (where spdystream turns a reset or a closed connection into `io.EOF`), the
//! readers handed out end with EOF when the server resets a stream or closes the session.

mod exec_spdy;
mod exec_ws;
mod portforward;
pub mod protocol;
mod upgrade;
mod ws_io;

#[cfg(test)]
mod loopback_tests;

pub use portforward::{PortForwardConn, PortForwardTransport, PortForwarder, port_forward};
pub use protocol::TerminalSize;

use anyhow::{Context, Result};
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Which streams an exec/attach asks for (the same flags the CRI request carried).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// How exec/attach reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Spdy,
    WebSocket,
}

/// What a finished non-interactive exec produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// A running exec/attach. Take the handles you asked for; `shutdown` on `stdin` closes the
/// remote stdin. Read `stdout`/`stderr` to EOF, then [`Interactive::wait`] for the exit code.
pub struct Interactive {
    pub stdin: Option<BoxWriter>,
    pub stdout: Option<BoxReader>,
    pub stderr: Option<BoxReader>,
    /// Terminal size changes (tty sessions on v3+).
    pub resize: Option<mpsc::Sender<TerminalSize>>,
    /// The subprotocol the server chose.
    pub protocol: String,
    exit: JoinHandle<Result<i32>>,
    closer: Closer,
}

enum Closer {
    Spdy(berth_spdy::Session),
    WebSocket(mpsc::Sender<Vec<u8>>),
}

impl Interactive {
    /// Waits for the status on the error stream and returns the exit code, then closes the
    /// connection (as client-go does once the streams are done).
    pub async fn wait(self) -> Result<i32> {
        let code = self.exit.await.context("error stream reader task")?;
        match self.closer {
            Closer::Spdy(session) => session.close().await,
            Closer::WebSocket(tx) => drop(tx),
        }
        code
    }
}

/// Starts an exec/attach at `url` and returns the stream handles.
pub async fn exec_interactive(
    url: &str,
    transport: Transport,
    opts: ExecOptions,
) -> Result<Interactive> {
    match transport {
        Transport::Spdy => exec_spdy::start(url, opts).await,
        Transport::WebSocket => exec_ws::start(url, opts).await,
    }
}

/// Runs an exec/attach to the end: feeds `stdin` (then closes it), collects stdout and stderr.
pub async fn exec<R>(
    url: &str,
    transport: Transport,
    opts: ExecOptions,
    stdin: Option<R>,
) -> Result<ExecResult>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let mut session = exec_interactive(url, transport, opts).await?;
    let feeder = match (session.stdin.take(), stdin) {
        (Some(mut remote), Some(mut local)) => Some(tokio::spawn(async move {
            tokio::io::copy(&mut local, &mut remote).await?;
            remote.shutdown().await
        })),
        (Some(mut remote), None) => {
            remote.shutdown().await?;
            None
        }
        _ => None,
    };
    let out = read_all(session.stdout.take());
    let err = read_all(session.stderr.take());
    let (stdout, stderr) = tokio::try_join!(out, err)?;
    let exit_code = session.wait().await?;
    if let Some(f) = feeder {
        // The command may exit without reading all of stdin; that is not a failure.
        let _ = f.await;
    }
    Ok(ExecResult {
        stdout,
        stderr,
        exit_code,
    })
}

async fn read_all(r: Option<BoxReader>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Reads like a spdystream stream in Go: a reset stream or an ended session reads as EOF.
pub struct GoEof<R>(pub R);

impl<R: AsyncRead + Unpin> AsyncRead for GoEof<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for GoEof<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
