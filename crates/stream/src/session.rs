//! Running an upgraded connection: which streams a session needs, opening the runtime's
//! side, and one log line per session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::runtime::ContainerRuntime;
use berth_core::stream::{PortForwarder, StreamRequest};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::forward::{self, Target};
use crate::protocol::{self, WsPortForward};
use crate::remotecommand::{self, ClientStreams, Ended, Kind, Reader, Writer};
use crate::spdy_portforward;
use crate::status::{Outcome, StatusFormat};
use crate::ws::ChannelMux;

/// How long a client gets to open the streams a session needs (k8s' default).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Deps {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub forwarder: Arc<dyn PortForwarder>,
    pub drain: Duration,
}

/// The transport an upgrade settled on.
#[derive(Debug, Clone)]
pub enum Transport {
    Spdy {
        protocol: &'static str,
    },
    WebSocket {
        protocol: &'static str,
        ports: Vec<u16>,
    },
}

type Io = TokioIo<Upgraded>;

/// What the client asked for, apart from the transport.
struct Wanted {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn wanted(req: &StreamRequest) -> Wanted {
    match req {
        StreamRequest::Exec { req, .. } => Wanted {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr && !req.tty,
            tty: req.tty,
        },
        StreamRequest::Attach { req, .. } => Wanted {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr && !req.tty,
            tty: req.tty,
        },
        StreamRequest::PortForward { .. } => Wanted {
            stdin: false,
            stdout: false,
            stderr: false,
            tty: false,
        },
    }
}

pub async fn run(io: Io, req: StreamRequest, transport: Transport, deps: Arc<Deps>) {
    let started = Instant::now();
    let (kind, pod, container) = match &req {
        StreamRequest::Exec { pod_id, req } => ("exec", pod_id.clone(), req.container_id.clone()),
        StreamRequest::Attach { pod_id, req } => {
            ("attach", pod_id.clone(), req.container_id.clone())
        }
        StreamRequest::PortForward { pod_id, .. } => ("portforward", pod_id.clone(), String::new()),
    };
    let (transport_name, protocol) = match &transport {
        Transport::Spdy { protocol } => ("spdy", *protocol),
        Transport::WebSocket { protocol, .. } => ("websocket", *protocol),
    };
    let outcome = match (req, transport) {
        (StreamRequest::PortForward { pod_id, netns }, transport) => {
            let target = Target {
                pod_id,
                netns,
                forwarder: deps.forwarder.clone(),
            };
            portforward(io, target, transport).await;
            "closed".to_string()
        }
        (req, Transport::Spdy { protocol }) => {
            describe(spdy_remotecommand(io, req, protocol, &deps).await)
        }
        (req, Transport::WebSocket { protocol, .. }) => {
            describe(ws_remotecommand(io, req, protocol, &deps).await)
        }
    };
    tracing::info!(
        kind,
        pod,
        container,
        transport = transport_name,
        protocol,
        duration_ms = started.elapsed().as_millis() as u64,
        outcome,
        "streaming session ended"
    );
}

fn describe(ended: Option<Ended>) -> String {
    match ended {
        None => "client did not open its streams".into(),
        Some(Ended::ClientGone) => "client went away".into(),
        Some(Ended::Status(Outcome::Success)) => "success".into(),
        Some(Ended::Status(Outcome::NonZeroExit { code, .. })) => format!("exit code {code}"),
        Some(Ended::Status(Outcome::Failed(m))) => format!("failed: {m}"),
    }
}

async fn open_session(
    req: &StreamRequest,
    deps: &Deps,
) -> (
    Result<berth_core::stream::StdioSession, berth_core::runtime::RuntimeError>,
    Kind,
) {
    match req {
        StreamRequest::Exec { pod_id, req } => {
            let command = req.process["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (
                deps.runtime.exec_stream(pod_id, req).await,
                Kind {
                    exec: true,
                    command,
                },
            )
        }
        StreamRequest::Attach { pod_id, req } => (
            deps.runtime.attach(pod_id, req).await,
            Kind {
                exec: false,
                command: Vec::new(),
            },
        ),
        StreamRequest::PortForward { .. } => (
            Err(berth_core::runtime::RuntimeError::InvalidArgument(
                "a port-forward request has no stdio session".into(),
            )),
            Kind {
                exec: false,
                command: Vec::new(),
            },
        ),
    }
}

async fn spdy_remotecommand(
    io: Io,
    req: StreamRequest,
    protocol: &'static str,
    deps: &Deps,
) -> Option<Ended> {
    let want = wanted(&req);
    let (session, mut acceptor) = berth_spdy::server(io, berth_spdy::Config::default());
    // v1/v2 have no resize stream; the error stream is always there.
    let resize = want.tty && matches!(protocol, "v4.channel.k8s.io" | "v3.channel.k8s.io");
    let needed: Vec<&str> = [
        (true, "error"),
        (want.stdin, "stdin"),
        (want.stdout, "stdout"),
        (want.stderr, "stderr"),
        (resize, "resize"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let mut got: std::collections::HashMap<String, berth_spdy::Stream> = Default::default();
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    while !needed.iter().all(|n| got.contains_key(*n)) {
        tokio::select! {
            s = acceptor.accept() => {
                let stream = s?;
                let kind = stream
                    .headers()
                    .get("streamtype")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if needed.contains(&kind.as_str()) && !got.contains_key(&kind) {
                    got.insert(kind, stream);
                } else {
                    tracing::debug!("streaming: unexpected stream type {kind:?}");
                    stream.reset();
                }
            }
            _ = &mut deadline => {
                tracing::warn!("streaming: timed out waiting for the client to create streams");
                session.close().await;
                return None;
            }
        }
    }
    let boxed_r = |s: Option<berth_spdy::Stream>| s.map(|s| Box::new(s) as Reader);
    let boxed_w = |s: Option<berth_spdy::Stream>| s.map(|s| Box::new(s) as Writer);
    let error = got.remove("error")?;
    let client = ClientStreams {
        stdin: boxed_r(got.remove("stdin")),
        stdout: boxed_w(got.remove("stdout")),
        stderr: boxed_w(got.remove("stderr")),
        resize: boxed_r(got.remove("resize")),
        error: Box::new(error),
        format: if protocol == "v4.channel.k8s.io" {
            StatusFormat::Json
        } else {
            StatusFormat::Text
        },
    };
    let (stdio, kind) = open_session(&req, deps).await;
    let closed = session.clone();
    let gone = async move {
        // Streams opened later than the session's are refused; the acceptor ending (or
        // the session closing) means the client is gone.
        tokio::select! {
            _ = async { while let Some(s) = acceptor.accept().await { s.reset(); } } => {}
            _ = closed.closed() => {}
        }
    };
    let ended = remotecommand::run(stdio, client, kind, deps.drain, gone).await;
    session.close().await;
    Some(ended)
}

async fn ws_remotecommand(
    io: Io,
    req: StreamRequest,
    protocol: &'static str,
    deps: &Deps,
) -> Option<Ended> {
    let want = wanted(&req);
    let spec = protocol::ws_remotecommand(protocol);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let mut mux = ChannelMux::new(ws, spec.codec, &[0, 4], spec.close_signals);
    // The kubelet's first message, on the lowest channel it writes: the session is up.
    let first = if want.stdout {
        1
    } else if want.stderr {
        2
    } else {
        3
    };
    mux.send(first, bytes::Bytes::new()).await;
    let stdin = mux.reader(0).filter(|_| want.stdin);
    let resize = mux.reader(4);
    let client = ClientStreams {
        stdin: stdin.map(|r| Box::new(r) as Reader),
        stdout: want.stdout.then(|| Box::new(mux.writer(1)) as Writer),
        stderr: want.stderr.then(|| Box::new(mux.writer(2)) as Writer),
        resize: resize.map(|r| Box::new(r) as Reader),
        error: Box::new(mux.writer(3)),
        format: spec.format,
    };
    let (stdio, kind) = open_session(&req, deps).await;
    let gone = mux.gone();
    let ended = remotecommand::run(stdio, client, kind, deps.drain, gone.cancelled_owned()).await;
    if ended != Ended::ClientGone {
        mux.close().await;
    }
    Some(ended)
}

async fn portforward(io: Io, target: Target, transport: Transport) {
    match transport {
        Transport::Spdy { .. } => {
            let (session, acceptor) = berth_spdy::server(io, berth_spdy::Config::default());
            spdy_portforward::serve(session, acceptor, target, STREAM_CREATION_TIMEOUT).await;
        }
        Transport::WebSocket { protocol, ports } => {
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            match protocol::ws_portforward(protocol) {
                WsPortForward::Tunnel => {
                    let (pipe, bridge) = crate::ws::tunnel(ws);
                    let mut bridge = tokio_util::task::AbortOnDropHandle::new(bridge);
                    let (session, acceptor) =
                        berth_spdy::server(pipe, berth_spdy::Config::default());
                    spdy_portforward::serve(session, acceptor, target, STREAM_CREATION_TIMEOUT)
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut bridge).await;
                }
                WsPortForward::Channels {
                    codec,
                    close_signals,
                } => {
                    let readable: Vec<u8> = (0..ports.len()).map(|i| (2 * i) as u8).collect();
                    let mux = ChannelMux::new(ws, codec, &readable, close_signals);
                    forward::serve_ws_channels(mux, ports, target, close_signals).await;
                }
            }
        }
    }
}
