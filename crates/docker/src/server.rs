//! Serving connections: HTTP/1.1 on a unix socket or on TCP with TLS (berthd builds the
//! listener and the TLS acceptor). On shutdown the listener closes, idle connections end,
//! and requests in flight (a pull's progress stream) finish first; berthd bounds the wait.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::{DockerApi, router};

/// How long a TCP client gets to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Listener {
    Unix(UnixListener),
    /// TCP, each connection through TLS (berthd's acceptor requires client certificates).
    Tls(TcpListener, TlsAcceptor),
}

/// Serves `listener` until `shutdown` resolves, then drains its connections.
pub async fn serve(api: Arc<DockerApi>, listener: Listener, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let conns = TaskTracker::new();
    let accept = async {
        loop {
            match &listener {
                Listener::Unix(l) => match l.accept().await {
                    Ok((s, _)) => {
                        conns.spawn(connection(s, api.clone(), stop_rx.clone()));
                    }
                    Err(e) => accept_failed(e).await,
                },
                Listener::Tls(l, acceptor) => match l.accept().await {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        let (acceptor, api, stop) =
                            (acceptor.clone(), api.clone(), stop_rx.clone());
                        conns.spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                                Ok(Ok(tls)) => connection(tls, api, stop).await,
                                Ok(Err(e)) => tracing::info!(%peer, error = %e, "docker api: TLS handshake failed"),
                                Err(_) => tracing::info!(%peer, "docker api: TLS handshake timed out"),
                            }
                        });
                    }
                    Err(e) => accept_failed(e).await,
                },
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    conns.close();
    conns.wait().await;
}

async fn accept_failed(e: std::io::Error) {
    // Out of descriptors and the like: wait instead of spinning.
    tracing::warn!(error = %e, "docker api: accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn connection<S>(io: S, api: Arc<DockerApi>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let svc = service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(router::handle(req, api).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // dockerd (Go) writes canonical header names; some clients compare them verbatim.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "docker api: connection");
    }
}
