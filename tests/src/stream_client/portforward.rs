//! Port-forward (client-go `tools/portforward`): over SPDY (many connections per session,
//! each an error + data stream pair), over WebSocket (one socket per connection) and over the
//! KEP-4006 tunnel (the SPDY session inside a WebSocket).

use super::GoEof;
use super::protocol::{
    CH_STDIN, PORT_FORWARD_PROTOCOL, PORT_FORWARD_TUNNEL_PROTOCOL, PORT_FORWARD_WS_PROTOCOL,
    PORT_HEADER, REQUEST_ID_HEADER, STREAM_DATA, STREAM_ERROR, STREAM_TYPE, channel_message,
    parse_port_prefix, split_channel_message,
};
use super::upgrade::{spdy_upgrade, websocket};
use super::ws_io::WsIo;
use anyhow::{Context, Result, anyhow, bail};
use berth_spdy::{Config, Session};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context as TaskCx, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// How port-forward reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortForwardTransport {
    /// `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`.
    Spdy,
    /// The WebSocket channel protocol, one socket per connection.
    WebSocket,
    /// KEP-4006: WebSocket subprotocol `SPDY/3.1+portforward.k8s.io` carrying SPDY frames.
    SpdyOverWebSocket,
}

/// A port-forward endpoint; [`PortForwarder::open`] makes one forwarded connection.
pub struct PortForwarder {
    inner: Inner,
}

enum Inner {
    Spdy {
        session: Session,
        next_request: AtomicU32,
    },
    WebSocket {
        url: String,
    },
}

impl PortForwarder {
    /// Connects to `url` (from the CRI PortForward RPC). SPDY transports set up the session
    /// here; WebSocket connects per [`PortForwarder::open`].
    pub async fn connect(url: &str, transport: PortForwardTransport) -> Result<PortForwarder> {
        let spdy_cfg = Config {
            ping_interval: Some(std::time::Duration::from_secs(5)),
            ..Config::default()
        };
        let inner = match transport {
            PortForwardTransport::Spdy => {
                let (io, chosen) = spdy_upgrade(url, &[PORT_FORWARD_PROTOCOL]).await?;
                if chosen != PORT_FORWARD_PROTOCOL {
                    bail!(
                        "unable to negotiate protocol: client supports {PORT_FORWARD_PROTOCOL:?}, server returned {chosen:?}"
                    );
                }
                Inner::Spdy {
                    session: berth_spdy::client(io, spdy_cfg),
                    next_request: AtomicU32::new(0),
                }
            }
            PortForwardTransport::SpdyOverWebSocket => {
                let (ws, chosen) = websocket(url, &[PORT_FORWARD_TUNNEL_PROTOCOL]).await?;
                if chosen != PORT_FORWARD_TUNNEL_PROTOCOL {
                    bail!(
                        "server chose subprotocol {chosen:?}, want {PORT_FORWARD_TUNNEL_PROTOCOL:?}"
                    );
                }
                Inner::Spdy {
                    session: berth_spdy::client(WsIo::new(ws), spdy_cfg),
                    next_request: AtomicU32::new(0),
                }
            }
            PortForwardTransport::WebSocket => Inner::WebSocket { url: url.into() },
        };
        Ok(PortForwarder { inner })
    }

    /// Opens one forwarded connection to `port` in the pod.
    pub async fn open(&self, port: u16) -> Result<PortForwardConn> {
        match &self.inner {
            Inner::Spdy {
                session,
                next_request,
            } => open_spdy(session, next_request.fetch_add(1, Ordering::Relaxed), port).await,
            Inner::WebSocket { url } => open_ws(url, port).await,
        }
    }

    /// Ends the SPDY session (WebSocket connections end with their `PortForwardConn`).
    pub async fn close(&self) {
        if let Inner::Spdy { session, .. } = &self.inner {
            session.close().await;
        }
    }
}

/// One-shot: connect and open a single forwarded connection (the forwarder lives as long as
/// the connection).
pub async fn port_forward(
    url: &str,
    transport: PortForwardTransport,
    port: u16,
) -> Result<PortForwardConn> {
    let forwarder = PortForwarder::connect(url, transport).await?;
    let mut conn = forwarder.open(port).await?;
    conn.forwarder = Some(forwarder);
    Ok(conn)
}

trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A forwarded connection: bytes to and from the pod's port. `shutdown` half-closes our side
/// (SPDY: FIN on the data stream; WebSocket: the protocol has no half-close, so we just stop
/// sending).
pub struct PortForwardConn {
    io: Box<dyn Duplex>,
    error: oneshot::Receiver<Result<Vec<u8>>>,
    forwarder: Option<PortForwarder>,
}

impl PortForwardConn {
    /// Waits until the server finished the error channel and returns what it said (`None`:
    /// nothing, the forward went fine). Call after the data side is done.
    pub async fn error_message(&mut self) -> Result<Option<String>> {
        let msg = (&mut self.error)
            .await
            .context("port-forward error reader ended without a result")??;
        Ok((!msg.is_empty()).then(|| String::from_utf8_lossy(&msg).into_owned()))
    }
}

impl AsyncRead for PortForwardConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PortForwardConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

async fn open_spdy(session: &Session, request_id: u32, port: u16) -> Result<PortForwardConn> {
    let mut headers = HeaderMap::new();
    headers.insert(STREAM_TYPE, HeaderValue::from_static(STREAM_ERROR));
    headers.insert(PORT_HEADER, HeaderValue::from(port));
    headers.insert(REQUEST_ID_HEADER, HeaderValue::from(request_id));
    let mut error = session
        .open(headers.clone(), false)
        .await
        .context("creating the port-forward error stream")?;
    // client-go closes its side of the error stream at once: only the server writes on it.
    error.shutdown().await?;
    headers.insert(STREAM_TYPE, HeaderValue::from_static(STREAM_DATA));
    let data = session
        .open(headers, false)
        .await
        .context("creating the port-forward data stream")?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut msg = Vec::new();
        let res = GoEof(&mut error).read_to_end(&mut msg).await;
        let _ = tx.send(res.map(|_| msg).map_err(anyhow::Error::from));
    });
    Ok(PortForwardConn {
        io: Box::new(GoEof(data)),
        error: rx,
        forwarder: None,
    })
}

/// Channel numbers of the first (only) port on a port-forward WebSocket.
const CH_DATA: u8 = 0;
const CH_PF_ERROR: u8 = 1;

async fn open_ws(url: &str, port: u16) -> Result<PortForwardConn> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}port={port}");
    let (ws, _chosen) = websocket(&url, &[PORT_FORWARD_WS_PROTOCOL]).await?;
    let (mut sink, mut source) = ws.split();
    let (user, pump) = tokio::io::duplex(64 << 10);
    let (mut pump_r, mut pump_w) = tokio::io::split(pump);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();

    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 << 10];
        let mut reading = true;
        loop {
            tokio::select! {
                r = pump_r.read(&mut buf), if reading => match r {
                    Ok(0) | Err(_) => reading = false,
                    Ok(n) => {
                        // CH_STDIN == 0 == the data channel of the first port.
                        debug_assert_eq!(CH_STDIN, CH_DATA);
                        let m = channel_message(CH_DATA, &buf[..n]);
                        if sink.send(Message::Binary(m.into())).await.is_err() {
                            break;
                        }
                    }
                },
                _ = &mut stop_rx => break,
            }
        }
        let _ = sink.close().await;
    });

    let (err_tx, err_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut seen = [false; 2];
        let mut error = Vec::new();
        let result = loop {
            let msg = match source.next().await {
                None | Some(Ok(Message::Close(_))) => break Ok(()),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => break Err(anyhow!("text message on port-forward")),
                Some(Err(e)) => break Err(anyhow::Error::new(e).context("WebSocket read")),
            };
            let Some((ch, mut data)) = split_channel_message(&msg) else {
                continue;
            };
            if ch > CH_PF_ERROR {
                continue;
            }
            if !seen[usize::from(ch)] {
                seen[usize::from(ch)] = true;
                match parse_port_prefix(data) {
                    Ok((p, _)) if p != port => {
                        break Err(anyhow!("channel {ch} announced port {p}, asked for {port}"));
                    }
                    Ok((_, rest)) => data = rest,
                    Err(e) => break Err(e),
                }
            }
            if ch == CH_DATA {
                if pump_w.write_all(data).await.is_err() {
                    break Ok(()); // the connection was dropped
                }
            } else {
                error.extend_from_slice(data);
            }
        };
        let _ = pump_w.shutdown().await;
        drop(stop_tx);
        let _ = err_tx.send(result.map(|()| error));
    });
    Ok(PortForwardConn {
        io: Box::new(user),
        error: err_rx,
        forwarder: None,
    })
}
