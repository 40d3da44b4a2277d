//! berth's streaming server: the URLs that CRI Exec, Attach and PortForward hand out, and
//! the sessions behind them, over SPDY/3.1 and WebSocket (the channel protocols and the
//! KEP-4006 SPDY tunnel), as crictl and the kubelet speak them.
//!
//! The CRI side registers a validated [`StreamRequest`] ([`StreamService::register`]) and
//! returns the URL; the client connects, its token is consumed, the connection is
//! upgraded and the session runs through core's ports ([`ContainerRuntime::exec_stream`],
//! [`ContainerRuntime::attach`], [`PortForwarder::connect`]).

mod forward;
mod http;
mod protocol;
mod remotecommand;
mod session;
mod spdy_portforward;
mod status;
mod tls;
mod tokens;
mod ws;

/// A session's descriptors as async reads and writes (the Docker API's hijacked streams use
/// them too).
pub mod fdio;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::config::StreamingConfig;
use berth_core::runtime::ContainerRuntime;
use berth_core::stream::{PortForwarder, StreamError, StreamRequest, StreamService};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use tls::{TlsSettings, server_config as tls_server_config};
pub use tokens::MAX_PENDING;

use crate::http::Shared;
use crate::session::Deps;
use crate::tokens::TokenStore;

#[derive(Debug, thiserror::Error)]
pub enum StreamServerError {
    #[error("streaming.address {address:?} is not an IP:port: {message}")]
    Address { address: String, message: String },
    #[error("streaming server: binding {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("streaming TLS {what} {}: {message}", path.display())]
    Tls {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// How long a connection gets to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for sessions to wind down.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

pub struct StreamServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    scheme: &'static str,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl StreamServer {
    /// Binds `cfg.address` now (so the URL's port is known), serves in a spawned task.
    pub async fn start(
        cfg: &StreamingConfig,
        tls: Option<TlsSettings>,
        runtime: Arc<dyn ContainerRuntime>,
        forwarder: Arc<dyn PortForwarder>,
    ) -> Result<Arc<StreamServer>, StreamServerError> {
        let address: SocketAddr = cfg.address.parse().map_err(|e: std::net::AddrParseError| {
            StreamServerError::Address {
                address: cfg.address.clone(),
                message: e.to_string(),
            }
        })?;
        let acceptor = match &tls {
            Some(t) => Some(TlsAcceptor::from(tls::server_config(t)?)),
            None => None,
        };
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StreamServerError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StreamServerError::Bind { address, source })?;
        let ttl = Duration::from_secs(cfg.token_ttl_secs);
        let shared = Arc::new(Shared {
            tokens: TokenStore::new(ttl),
            deps: Arc::new(Deps {
                runtime,
                forwarder,
                drain: Duration::from_secs(cfg.drain_timeout_secs),
            }),
            cancel: CancellationToken::new(),
            sessions: TaskTracker::new(),
        });
        let accept = tokio::spawn(accept_loop(listener, acceptor, shared.clone()));
        let sweeper = tokio::spawn(sweep_loop(shared.clone(), ttl));
        tracing::info!(
            address = %local_addr,
            tls = tls.is_some(),
            "streaming server listening"
        );
        Ok(Arc::new(StreamServer {
            shared,
            local_addr,
            scheme: if tls.is_some() { "https" } else { "http" },
            tasks: Mutex::new(vec![accept, sweeper]),
        }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, forgets pending tokens, ends the sessions in progress (an exec's
    /// process is killed with its session) and waits a little for them to finish.
    pub async fn shutdown(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.shared.cancel.cancel();
        self.shared.tokens.clear();
        self.shared.sessions.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.shared.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("streaming: sessions still winding down after shutdown");
        }
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl StreamService for StreamServer {
    fn register(&self, req: StreamRequest) -> Result<String, StreamError> {
        let kind = match &req {
            StreamRequest::Exec { .. } => "exec",
            StreamRequest::Attach { .. } => "attach",
            StreamRequest::PortForward { .. } => "portforward",
        };
        if self.shared.cancel.is_cancelled() {
            return Err(StreamError::Unavailable(
                "the streaming server is shut down".into(),
            ));
        }
        let token = self.shared.tokens.insert(req)?;
        Ok(format!(
            "{}://{}/{kind}/{token}",
            self.scheme, self.local_addr
        ))
    }
}

async fn sweep_loop(shared: Arc<Shared>, ttl: Duration) {
    let mut tick =
        tokio::time::interval(ttl.clamp(Duration::from_secs(1), Duration::from_secs(30)));
    loop {
        tick.tick().await;
        shared.tokens.sweep();
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!("streaming: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared2 = shared.clone();
        let tls = tls.clone();
        shared.sessions.spawn(async move {
            let cancel = shared2.cancel.clone();
            let serve = async move {
                match tls {
                    None => serve_connection(tcp, shared2).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(stream)) => serve_connection(stream, shared2).await,
                            Ok(Err(e)) => tracing::info!("streaming: TLS from {peer}: {e}"),
                            Err(_) => {
                                tracing::info!("streaming: TLS from {peer}: handshake timed out")
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

async fn serve_connection<S>(io: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(http::handle(req, shared).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("streaming: connection: {e}");
    }
}
