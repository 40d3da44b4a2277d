//! One tower layer that logs every RPC: request id, method, latency and outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy, Default)]
pub struct RpcTraceLayer;

impl<S> Layer<S> for RpcTraceLayer {
    type Service = RpcTrace<S>;
    fn layer(&self, inner: S) -> RpcTrace<S> {
        RpcTrace { inner }
    }
}

#[derive(Clone)]
pub struct RpcTrace<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for RpcTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The ready service is the one we were polled on; keep a fresh clone for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let method = req.uri().path().to_string();
        let span = tracing::info_span!("rpc", id, method = %method);
        let start = Instant::now();
        let fut = inner.call(req);
        Box::pin(
            async move {
                let res = fut.await;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                match &res {
                    Ok(resp) => {
                        // Errors travel as trailers-only responses: grpc-status in the headers.
                        let code = resp
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<i32>().ok())
                            .unwrap_or(0);
                        let name = if code == 0 {
                            "OK".to_string()
                        } else {
                            format!("{:?}", tonic::Code::from(code))
                        };
                        crate::metrics::observe_rpc(&method, &name, ms / 1000.0);
                        if code == 0 {
                            tracing::info!(latency_ms = ms, outcome = "OK", "rpc done");
                        } else {
                            let error = resp
                                .headers()
                                .get("grpc-message")
                                .map(|v| percent_decode(v.as_bytes()))
                                .unwrap_or_default();
                            let outcome = format!("{:?}", tonic::Code::from(code));
                            tracing::warn!(latency_ms = ms, outcome, error, "rpc failed");
                        }
                    }
                    Err(e) => {
                        crate::metrics::observe_rpc(&method, "TransportError", ms / 1000.0);
                        tracing::warn!(latency_ms = ms, outcome = "transport error", error = %e, "rpc failed")
                    }
                }
                res
            }
            .instrument(span),
        )
    }
}

/// grpc-message is percent-encoded on the wire; logs should read as plain text.
fn percent_decode(v: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && i + 2 < v.len()
            && let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_grpc_messages() {
        assert_eq!(super::percent_decode(b"a%20b%3A%zz%2"), "a b:%zz%2");
    }
}
