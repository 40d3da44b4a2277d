//! exec/attach over WebSocket (client-go `remotecommand/websocket.go`): binary messages whose
//! first byte names the channel; v5 closes a channel with `[255, channel]`.

use super::protocol::{
    CH_CLOSE, CH_ERROR, CH_RESIZE, CH_STDERR, CH_STDIN, CH_STDOUT, EXEC_PROTOCOLS, ExecVersion,
    channel_message, exit_code, resize_message, split_channel_message,
};
use super::upgrade::{Ws, websocket};
use super::{Closer, ExecOptions, Interactive};
use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Pipe size between the socket tasks and the handles.
const PIPE: usize = 64 << 10;

pub(super) async fn start(url: &str, opts: ExecOptions) -> Result<Interactive> {
    let (ws, chosen) = websocket(url, &EXEC_PROTOCOLS).await?;
    let version = ExecVersion::from_protocol(&chosen)?;
    let (
        Sockets {
            out,
            stdout,
            stderr,
        },
        error_rx,
    ) = spawn_socket_tasks(ws, &opts);

    let stdin = opts.stdin.then(|| {
        let (user, mut pump) = tokio::io::duplex(PIPE);
        let out = out.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match pump.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out
                            .send(channel_message(CH_STDIN, &buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if version >= ExecVersion::V5 {
                let _ = out.send(vec![CH_CLOSE, CH_STDIN]).await;
            }
        });
        Box::new(user) as super::BoxWriter
    });
    let resize = (opts.tty && version >= ExecVersion::V3).then(|| {
        let (tx, mut rx) = mpsc::channel(8);
        let out = out.clone();
        tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                let msg = channel_message(CH_RESIZE, &resize_message(size));
                if out.send(msg).await.is_err() {
                    break;
                }
            }
        });
        tx
    });
    let exit = tokio::spawn(async move {
        let msg = error_rx
            .await
            .context("the WebSocket reader ended without a result")??;
        exit_code(version, &msg)
    });
    Ok(Interactive {
        stdin,
        stdout: stdout.map(|s| Box::new(s) as _),
        stderr: stderr.map(|s| Box::new(s) as _),
        resize,
        protocol: chosen,
        exit,
        closer: Closer::WebSocket(out),
    })
}

struct Sockets {
    /// Messages to send (channel byte included).
    out: mpsc::Sender<Vec<u8>>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
}

/// Spawns the writer (queue → socket; a Close frame once every sender is gone) and the
/// demultiplexer (socket → stdout/stderr pipes, error channel → the returned result, which
/// resolves when the server closes the socket).
fn spawn_socket_tasks(ws: Ws, opts: &ExecOptions) -> (Sockets, oneshot::Receiver<Result<Vec<u8>>>) {
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(Message::Binary(m.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });

    let pipe = |wanted: bool| wanted.then(|| tokio::io::duplex(PIPE));
    let (stdout_user, mut stdout_w) = pipe(opts.stdout).unzip();
    let (stderr_user, mut stderr_w) = pipe(opts.stderr && !opts.tty).unzip();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut error = Vec::new();
        let result = loop {
            let msg = match source.next().await {
                None | Some(Ok(Message::Close(_))) => break Ok(()),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => {
                    break Err(anyhow::anyhow!("text message on a binary channel protocol"));
                }
                Some(Err(e)) => break Err(anyhow::Error::new(e).context("WebSocket read")),
            };
            let Some((channel, data)) = split_channel_message(&msg) else {
                continue;
            };
            let target = match channel {
                CH_STDOUT => stdout_w.as_mut(),
                CH_STDERR => stderr_w.as_mut(),
                CH_ERROR => {
                    error.extend_from_slice(data);
                    continue;
                }
                _ => None,
            };
            if let Some(w) = target {
                // The user dropped the reader: keep demultiplexing the other channels.
                let _ = w.write_all(data).await;
            }
        };
        drop((stdout_w, stderr_w)); // EOF for the readers
        let _ = done_tx.send(result.map(|()| error));
    });
    (
        Sockets {
            out: out_tx,
            stdout: stdout_user,
            stderr: stderr_user,
        },
        done_rx,
    )
}
