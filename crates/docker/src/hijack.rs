//! Hijacked streams, as dockerd does them for attach and exec start: the client asks for
//! `Upgrade: tcp` and gets 101 Switching Protocols, after which the connection carries the
//! session's bytes both ways. Without a tty, stdout and stderr are multiplexed, each chunk
//! behind an 8-byte header (stream, 0, 0, 0, big-endian length); with one, the terminal's
//! output is sent raw. What the client sends is the process' stdin, watched for the detach
//! keys. A client that asks no upgrade (older SDKs) gets a 200 `raw-stream` body of the
//! output instead, with no stdin.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use berth_core::stream::StdioSession;
use berth_stream::fdio::FdIo;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::error::ApiError;
use crate::http::Reply;
use crate::stdin::pump_stdin;
pub use crate::stdin::{DEFAULT_DETACH_KEYS, parse_detach_keys};

/// How long an exec's output may stay open after its process exited (a background child
/// may hold the pipe for ever).
const DRAIN: Duration = Duration::from_secs(2);

/// The session's end as the caller learns it, before the client sees end of stream.
pub type OnEnd = Box<dyn FnOnce(Option<i32>) + Send>;

/// True when the client asked to upgrade the connection (`Upgrade: tcp`).
pub fn wants_upgrade(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// Answers the request with the session: 101 and the pump on the upgraded connection, or
/// (no upgrade asked) a 200 body of its output.
pub fn respond(
    upgrade: Option<OnUpgrade>,
    session: StdioSession,
    tty: bool,
    detach: Option<Vec<u8>>,
    replay: Vec<Bytes>,
    on_end: OnEnd,
) -> Reply {
    match upgrade {
        Some(on) => {
            tokio::spawn(async move {
                match on.await {
                    Ok(up) => {
                        pump(
                            TokioIo::new(up),
                            session,
                            tty,
                            detach,
                            replay,
                            false,
                            on_end,
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "docker api: upgrading the connection failed")
                    }
                }
            });
            switching(tty)
        }
        None => {
            let (ours, theirs) = tokio::io::duplex(64 << 10);
            let mut session = session;
            // Nothing comes from such a client: no stdin.
            session.stdin = None;
            tokio::spawn(pump(ours, session, tty, None, replay, false, on_end));
            let chunks = tokio_util::io::ReaderStream::new(theirs)
                .filter_map(|r| async move { r.ok() })
                .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
            let mut resp = Response::new(StreamBody::new(chunks).boxed_unsync());
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, raw_stream(tty));
            resp
        }
    }
}

/// Opens a session once the client is there (see [`respond_later`]).
pub type Opener =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<StdioSession, ApiError>> + Send>>;

/// Like [`respond`], but with an upgrade the session is opened only after the 101 went
/// out, as dockerd starts an exec: output that came with the 101 could be lost in a
/// client's buffer (the Python SDK's). A failure to open is then written to the stream
/// and ends it with exit code 126 (127 for a program not found), as dockerd reports it.
/// The process outlives its client, as dockerd's exec does: one that detached or went
/// away leaves it running, its output read and dropped, until it exits.
pub async fn respond_later(
    upgrade: Option<OnUpgrade>,
    open: Opener,
    tty: bool,
    detach: Option<Vec<u8>>,
    on_end: OnEnd,
) -> Result<Reply, ApiError> {
    let Some(on) = upgrade else {
        let session = open.await?;
        return Ok(respond(None, session, tty, detach, Vec::new(), on_end));
    };
    tokio::spawn(async move {
        let io = match on.await {
            Ok(up) => TokioIo::new(up),
            Err(e) => {
                tracing::info!(error = %e, "docker api: upgrading the connection failed");
                return on_end(None);
            }
        };
        match open.await {
            Ok(session) => pump(io, session, tty, detach, Vec::new(), true, on_end).await,
            Err(e) => {
                // Worded as dockerd's, which the CLI shows as it is.
                let not_found = e.message.contains("No such file or directory");
                let hint = if not_found {
                    ": executable file not found in $PATH"
                } else {
                    ""
                };
                let msg = format!("OCI runtime exec failed: {}{hint}\r\n", e.message);
                on_end(Some(if not_found { 127 } else { 126 }));
                let mut io = io;
                let _ = io.write_all(&frame(1, msg.as_bytes(), tty)).await;
                let _ = io.shutdown().await;
            }
        }
    });
    Ok(switching(tty))
}

/// Answers with chunks already framed (an attach that follows the log): after a 101 they
/// are written to the upgraded connection, else they are the 200 body.
pub fn respond_chunks(
    upgrade: Option<OnUpgrade>,
    tty: bool,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
) -> Reply {
    let Some(on) = upgrade else {
        return crate::http::stream(raw_stream_type(tty), rx);
    };
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut io = TokioIo::new(up);
        settle().await;
        while let Some(b) = rx.recv().await {
            if io.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = io.shutdown().await;
    });
    switching(tty)
}

/// Lets the client read the 101 before the first bytes follow: a client that reads the
/// response through a buffer (Python's http.client, so the SDK) loses what came in the
/// same read as the headers once it takes the raw socket. dockerd has the time a log
/// read takes; output that is there at once (a replayed log) waits as long.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn switching(tty: bool) -> Reply {
    let mut resp = Response::new(crate::http::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, raw_stream(tty));
    resp
}

/// `data` as sent on `stream` (1 stdout, 2 stderr): raw with a tty, else behind the
/// 8-byte header.
fn frame(stream: u8, data: &[u8], tty: bool) -> Vec<u8> {
    if tty {
        return data.to_vec();
    }
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&[stream, 0, 0, 0]);
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

fn raw_stream(tty: bool) -> HeaderValue {
    HeaderValue::from_static(raw_stream_type(tty))
}

fn raw_stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Carries the session over `io` until the process exits (outputs drained) or the client
/// detaches; the client then sees end of stream. With `outlive_client` (exec) neither the
/// detach keys nor a client gone end the session before the process.
pub async fn pump<S>(
    io: S,
    session: StdioSession,
    tty: bool,
    detach: Option<Vec<u8>>,
    replay: Vec<Bytes>,
    outlive_client: bool,
    on_end: OnEnd,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let StdioSession {
        stdin,
        stdout,
        stderr,
        resize: _resize,
        mut exit,
    } = session;
    let (mut rd, mut wr) = tokio::io::split(io);
    // An attach's `logs=1`: the log so far, before what comes live.
    if !replay.is_empty() {
        settle().await;
    }
    for b in replay {
        if wr.write_all(&b).await.is_err() {
            return on_end(None);
        }
    }
    let stdout = open(stdout);
    let stderr = open(stderr);
    let code = {
        let outputs = async {
            let out = copy_out(
                stdout.as_ref(),
                stderr.as_ref(),
                tty,
                outlive_client,
                &mut wr,
            );
            tokio::pin!(out);
            let mut out_done = false;
            let code = loop {
                tokio::select! {
                    c = &mut exit => break c,
                    _ = &mut out, if !out_done => out_done = true,
                }
            };
            if !out_done {
                let _ = tokio::time::timeout(DRAIN, out).await;
            }
            code.ok()
        };
        let input = pump_stdin(&mut rd, stdin, detach);
        tokio::pin!(outputs, input);
        let mut input_done = false;
        loop {
            tokio::select! {
                code = &mut outputs => break code,
                detached = &mut input, if !input_done => {
                    if detached && !outlive_client {
                        break None;
                    }
                    input_done = true;
                }
            }
        }
    };
    on_end(code);
    let _ = wr.shutdown().await;
}

pub(crate) fn open(fd: Option<OwnedFd>) -> Option<FdIo> {
    fd.and_then(|fd| {
        FdIo::new(fd)
            .map_err(|e| tracing::warn!(error = %e, "docker api: a session descriptor"))
            .ok()
    })
}

/// Copies the outputs to the client until both end (or the client goes away).
async fn copy_out<W: AsyncWrite + Unpin>(
    stdout: Option<&FdIo>,
    stderr: Option<&FdIo>,
    tty: bool,
    outlive_client: bool,
    wr: &mut W,
) {
    let mut gone = false;
    let mut bo = vec![0u8; 32 << 10];
    let mut be = vec![0u8; 32 << 10];
    let (mut o_open, mut e_open) = (stdout.is_some(), stderr.is_some());
    while o_open || e_open {
        let (kind, n) = tokio::select! {
            r = read_opt(stdout, &mut bo), if o_open => (1u8, r),
            r = read_opt(stderr, &mut be), if e_open => (2u8, r),
        };
        let n = match n {
            Ok(0) | Err(_) => {
                if kind == 1 {
                    o_open = false
                } else {
                    e_open = false
                }
                continue;
            }
            Ok(n) => n,
        };
        if gone {
            continue;
        }
        let data = if kind == 1 { &bo[..n] } else { &be[..n] };
        let sent = wr.write_all(&frame(kind, data, tty)).await;
        if sent.is_err() || wr.flush().await.is_err() {
            if !outlive_client {
                return;
            }
            // Read on, so that the process never blocks on a full pipe.
            gone = true;
        }
    }
}

async fn read_opt(fd: Option<&FdIo>, buf: &mut [u8]) -> io::Result<usize> {
    match fd {
        Some(f) => f.read(buf).await,
        None => Ok(0),
    }
}

#[cfg(test)]
#[path = "hijack_tests.rs"]
mod tests;
