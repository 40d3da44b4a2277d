//! An exec or attach session carried over any transport: the client's streams on one side,
//! the session's descriptors on the other, the final status on the error stream.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::time::Duration;

use berth_core::runtime::RuntimeError;
use berth_core::stream::{StdioSession, TtyResizer};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::fdio::FdIo;
use crate::status::{Outcome, StatusFormat};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

const BUF: usize = 32 * 1024;

/// The client's side of a session, as the transport opened it.
pub struct ClientStreams {
    pub stdin: Option<Reader>,
    pub stdout: Option<Writer>,
    pub stderr: Option<Writer>,
    pub resize: Option<Reader>,
    pub error: Writer,
    pub format: StatusFormat,
}

/// How the session ended, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The status was written to the client.
    Status(Outcome),
    /// The client went away first; the session was dropped (an exec's process killed).
    ClientGone,
}

pub struct Kind {
    /// Exec (exit codes are reported) or attach (success whatever the container's code).
    pub exec: bool,
    /// The exec's argv, quoted in the non-zero exit message.
    pub command: Vec<String>,
}

/// Runs the session until it exits (then drains its output for at most `drain`, writes
/// the status and finishes the client's output streams) or until `gone` resolves (the
/// client left: everything is dropped).
pub async fn run(
    session: Result<StdioSession, RuntimeError>,
    mut client: ClientStreams,
    kind: Kind,
    drain: Duration,
    gone: impl Future<Output = ()>,
) -> Ended {
    let what = if kind.exec {
        "error executing command in container"
    } else {
        "error attaching to container"
    };
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let outcome = Outcome::Failed(format!("{what}: {e}"));
            finish(&mut client, &outcome).await;
            return Ended::Status(outcome);
        }
    };
    let StdioSession {
        stdin,
        stdout,
        stderr,
        resize,
        mut exit,
    } = session;
    let stdout = open(stdout);
    let stderr = open(stderr);

    // Boxed, not pinned on the stack, so that dropping them ends their borrows of `client`.
    let mut stdin_pump = Box::pin(pump_stdin(client.stdin.as_mut(), stdin));
    let mut resize_pump = Box::pin(pump_resize(client.resize.as_mut(), resize));
    let mut outputs = Box::pin(futures::future::join(
        copy_out(stdout.as_ref(), client.stdout.as_mut()),
        copy_out(stderr.as_ref(), client.stderr.as_mut()),
    ));
    tokio::pin!(gone);

    let (mut stdin_done, mut resize_done, mut out_done) = (false, false, false);
    let code = loop {
        tokio::select! {
            code = &mut exit => break code,
            _ = &mut gone => return Ended::ClientGone,
            _ = &mut stdin_pump, if !stdin_done => stdin_done = true,
            _ = &mut resize_pump, if !resize_done => resize_done = true,
            _ = &mut outputs, if !out_done => out_done = true,
        }
    };
    if !out_done {
        // Processes the command left behind may hold its output open: wait a little only.
        tokio::select! {
            _ = &mut outputs => {}
            _ = tokio::time::sleep(drain) => {}
            _ = &mut gone => return Ended::ClientGone,
        }
    }
    // Release the borrows of the client's streams; the session's descriptors go with them.
    drop(outputs);
    drop(stdin_pump);
    drop(resize_pump);

    let outcome = match code {
        Ok(0) => Outcome::Success,
        Ok(_) if !kind.exec => Outcome::Success,
        Ok(code) => Outcome::NonZeroExit {
            command: kind.command,
            code,
        },
        Err(e) => Outcome::Failed(format!("{what}: {e}")),
    };
    finish(&mut client, &outcome).await;
    Ended::Status(outcome)
}

fn open(fd: Option<OwnedFd>) -> Option<FdIo> {
    let fd = fd?;
    match FdIo::new(fd) {
        Ok(io) => Some(io),
        Err(e) => {
            tracing::warn!("streaming: cannot read a session descriptor: {e}");
            None
        }
    }
}

/// Finishes the output streams, then writes the status and finishes the error stream:
/// client-go waits for stdout/stderr to end before it reads the status.
async fn finish(client: &mut ClientStreams, outcome: &Outcome) {
    for w in [client.stdout.as_mut(), client.stderr.as_mut()]
        .into_iter()
        .flatten()
    {
        let _ = w.shutdown().await;
    }
    let status = outcome.encode(client.format);
    if !status.is_empty() {
        let _ = client.error.write_all(&status).await;
    }
    let _ = client.error.shutdown().await;
}

/// Client stdin → the session's stdin, which is closed (dropped) at the client's EOF.
async fn pump_stdin(client: Option<&mut Reader>, fd: Option<OwnedFd>) {
    let (Some(client), Some(fd)) = (client, fd) else {
        return;
    };
    let Some(fd) = open(Some(fd)) else {
        return;
    };
    let mut buf = vec![0u8; BUF];
    loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if fd.write_all(&buf[..n]).await.is_err() {
                    // The process closed its stdin; keep nothing more from the client.
                    break;
                }
            }
        }
    }
}

/// The session's output → a client stream, finished at the session's EOF.
async fn copy_out(fd: Option<&FdIo>, client: Option<&mut Writer>) {
    let (Some(fd), Some(client)) = (fd, client) else {
        return;
    };
    let mut buf = vec![0u8; BUF];
    loop {
        match fd.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if client.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("streaming: reading session output: {e}");
                break;
            }
        }
    }
    let _ = client.flush().await;
    let _ = client.shutdown().await;
}

/// client-go's `remotecommand.TerminalSize`, JSON-encoded one after another.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Takes the complete JSON objects off the front of `buf`.
pub fn parse_sizes(buf: &mut Vec<u8>) -> Result<Vec<TerminalSize>, serde_json::Error> {
    let mut out = Vec::new();
    let mut iter = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
    let consumed = loop {
        match iter.next() {
            Some(Ok(size)) => out.push(size),
            Some(Err(e)) if e.is_eof() => break iter.byte_offset(),
            Some(Err(e)) => return Err(e),
            None => break iter.byte_offset(),
        }
    };
    buf.drain(..consumed);
    Ok(out)
}

async fn pump_resize(client: Option<&mut Reader>, resizer: Option<Box<dyn TtyResizer>>) {
    let Some(client) = client else {
        return;
    };
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 1024];
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let sizes = match parse_sizes(&mut pending) {
            Ok(s) => s,
            Err(e) => {
                // Like the kubelet: a malformed resize stream ends resizing, not the session.
                tracing::debug!("streaming: invalid resize message: {e}");
                return;
            }
        };
        if let Some(resizer) = resizer.as_ref() {
            for s in sizes {
                if let Err(e) = resizer.resize(s.width, s.height).await {
                    tracing::debug!("streaming: resize to {}x{}: {e}", s.width, s.height);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_parsed_across_reads() {
        let mut buf = br#"{"Width":80,"Height":24}
{"Width":100,"#
            .to_vec();
        let got = parse_sizes(&mut buf).expect("parse");
        assert_eq!(
            got,
            vec![TerminalSize {
                width: 80,
                height: 24
            }]
        );
        buf.extend_from_slice(br#""Height":40}"#);
        let got = parse_sizes(&mut buf).expect("parse");
        assert_eq!(
            got,
            vec![TerminalSize {
                width: 100,
                height: 40
            }]
        );
        assert!(buf.is_empty() || buf.iter().all(u8::is_ascii_whitespace));
        let mut bad = br#"{"Width":"wide"}"#.to_vec();
        assert!(parse_sizes(&mut bad).is_err());
    }
}
