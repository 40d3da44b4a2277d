//! The HTTP side: `/{exec,attach,portforward}/{token}`, the upgrade handshakes (SPDY/3.1
//! with `X-Stream-Protocol-Version`, WebSocket with `Sec-WebSocket-Protocol`) and their
//! refusals, answered as the kubelet's streaming server answers them.

use std::sync::Arc;

use berth_core::stream::StreamRequest;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{self, WsPortForward};
use crate::session::{self, Deps, Transport};
use crate::tokens::TokenStore;

const PROTOCOL_VERSION: &str = "x-stream-protocol-version";
const ACCEPTED_VERSIONS: &str = "x-accepted-stream-protocol-versions";
const WS_PROTOCOL: &str = "sec-websocket-protocol";

pub struct Shared {
    pub tokens: TokenStore,
    pub deps: Arc<Deps>,
    pub cancel: CancellationToken,
    pub sessions: TaskTracker,
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<String> {
    let mut body = body.into();
    body.push('\n');
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn header_has(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(token))
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && header_has(headers, CONNECTION, "upgrade")
}

fn kind_of(req: &StreamRequest) -> &'static str {
    match req {
        StreamRequest::Exec { .. } => "exec",
        StreamRequest::Attach { .. } => "attach",
        StreamRequest::PortForward { .. } => "portforward",
    }
}

pub async fn handle(mut req: Request<Incoming>, shared: Arc<Shared>) -> Response<String> {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let Some((kind, token)) = path.split_once('/') else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no streaming endpoint at /{path}"),
        );
    };
    let kind: &'static str = match kind {
        "exec" => "exec",
        "attach" => "attach",
        "portforward" => "portforward",
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                format!("no streaming endpoint at /{path}"),
            );
        }
    };
    if token.is_empty() || token.contains('/') {
        return text(
            StatusCode::NOT_FOUND,
            format!("no streaming endpoint at /{path}"),
        );
    }
    if req.method() != Method::GET && req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed: use GET or POST", req.method()),
        );
    }
    // Consumed before anything else, like the kubelet: a URL serves one attempt.
    let stream_req = match shared.tokens.consume(token) {
        Ok(r) => r,
        Err(rejection) => return text(StatusCode::NOT_FOUND, rejection.message()),
    };
    if kind_of(&stream_req) != kind {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "streaming token was issued for {}, not {kind}",
                kind_of(&stream_req)
            ),
        );
    }
    let portforward = kind == "portforward";
    let (resp, transport) = if is_websocket(req.headers()) {
        match websocket_handshake(&req, portforward) {
            Ok(ok) => ok,
            Err(resp) => return *resp,
        }
    } else {
        match spdy_handshake(req.headers(), portforward) {
            Ok(ok) => ok,
            Err(resp) => return *resp,
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let deps = shared.deps.clone();
    let cancel = shared.cancel.clone();
    shared.sessions.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("streaming: {kind} upgrade failed: {e}");
                return;
            }
        };
        tokio::select! {
            _ = session::run(TokioIo::new(upgraded), stream_req, transport, deps) => {}
            _ = cancel.cancelled() => {
                tracing::info!("streaming: {kind} session ended by shutdown");
            }
        }
    });
    resp
}

type Handshake = Result<(Response<String>, Transport), Box<Response<String>>>;

fn refuse(status: StatusCode, body: impl Into<String>) -> Box<Response<String>> {
    Box::new(text(status, body))
}

fn spdy_handshake(headers: &HeaderMap, portforward: bool) -> Handshake {
    let server = if portforward {
        protocol::SPDY_PORTFORWARD
    } else {
        protocol::SPDY_REMOTECOMMAND
    };
    let client = protocol::header_list(headers, PROTOCOL_VERSION);
    if client.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: header X-Stream-Protocol-Version is missing or empty \
             (streaming requests upgrade to SPDY/3.1 or websocket)",
        ));
    }
    let Some(chosen) = protocol::negotiate(&client, server) else {
        let mut resp = text(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server:?}"
            ),
        );
        for p in server {
            resp.headers_mut()
                .append(ACCEPTED_VERSIONS, HeaderValue::from_static(p));
        }
        return Err(Box::new(resp));
    };
    if !header_has(headers, CONNECTION, "upgrade") || !header_has(headers, UPGRADE, "spdy/3.1") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request (Connection: Upgrade, Upgrade: SPDY/3.1)",
        ));
    }
    let mut resp = Response::new(String::new());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(PROTOCOL_VERSION, HeaderValue::from_static(chosen));
    Ok((resp, Transport::Spdy { protocol: chosen }))
}

fn websocket_handshake(req: &Request<Incoming>, portforward: bool) -> Handshake {
    let headers = req.headers();
    if req.method() != Method::GET {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "websocket upgrades must use GET",
        ));
    }
    let Some(key) = headers.get("sec-websocket-key") else {
        return Err(refuse(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    };
    if headers.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version: 13 is required",
        ));
    }
    let server = if portforward {
        protocol::WS_PORTFORWARD
    } else {
        protocol::WS_REMOTECOMMAND
    };
    let mut client = protocol::header_list(headers, WS_PROTOCOL);
    let chosen = if client.is_empty() {
        // No subprotocol asked: the kubelet serves plain channel.k8s.io.
        client.push(String::new());
        ""
    } else {
        match protocol::negotiate(&client, server) {
            Some(p) => p,
            None => {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requested protocol(s) are not supported: {client:?}; supports {server:?}"
                    ),
                ));
            }
        }
    };
    let mut ports = Vec::new();
    if portforward && protocol::ws_portforward(chosen) != WsPortForward::Tunnel {
        ports = match protocol::query_ports(req.uri().query()) {
            Ok(p) if p.len() <= 127 => p,
            Ok(p) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("{} ports asked; at most 127 fit the channels", p.len()),
                ));
            }
            Err(e) => return Err(refuse(StatusCode::BAD_REQUEST, e)),
        };
    }
    let mut resp = Response::new(String::new());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    let accept = derive_accept_key(key.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    if !chosen.is_empty() {
        h.insert(WS_PROTOCOL, HeaderValue::from_static(chosen));
    }
    Ok((
        resp,
        Transport::WebSocket {
            protocol: chosen,
            ports,
        },
    ))
}
