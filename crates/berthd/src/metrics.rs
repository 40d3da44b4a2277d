//! berthd's own Prometheus metrics on an opt-in plain-HTTP address (`[metrics] address`):
//! RPC counts and latencies per method and code, pulls, pods and containers by state, pod
//! monitors, and leftovers found by a periodic self-check.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: typed metric
//! families, OpenMetrics/Prometheus text encoding, no global registry or unsafe, and
//! actively maintained (the `prometheus` crate is older and keeps a process-global
//! default registry this daemon has no use for).

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use berth_engine::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How often the leftover self-check runs.
const SELF_CHECK_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rpc {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: String,
}

/// The RPC series, recorded by the RPC trace layer for every call.
pub struct RpcMetrics {
    calls: Family<Rpc, Counter>,
    latency: Family<Rpc, Histogram>,
}

static RPC: OnceLock<RpcMetrics> = OnceLock::new();

fn rpc() -> &'static RpcMetrics {
    RPC.get_or_init(|| RpcMetrics {
        calls: Family::default(),
        // 0.1 ms .. ~26 s.
        latency: Family::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 4.0, 10))
        }),
    })
}

/// Records one finished RPC: its gRPC method path and status code name ("OK", "NotFound").
pub fn observe_rpc(method: &str, code: &str, seconds: f64) {
    let l = Rpc {
        method: method.to_string(),
        code: code.to_string(),
    };
    let m = rpc();
    m.calls.get_or_create(&l).inc();
    m.latency.get_or_create(&l).observe(seconds);
}

/// Renders every series as Prometheus text, reading the node's state now.
fn render(engine: &Engine, leaked: &Gauge<i64, AtomicI64>) -> anyhow::Result<String> {
    let mut reg = Registry::with_prefix("berth");
    let m = rpc();
    reg.register(
        "rpc_requests",
        "CRI RPCs served, by method and gRPC code",
        m.calls.clone(),
    );
    reg.register(
        "rpc_duration_seconds",
        "CRI RPC latency, by method and gRPC code",
        m.latency.clone(),
    );
    let c = engine.census();
    let pods = Family::<State, Gauge>::default();
    for (s, n) in &c.pods {
        pods.get_or_create(&State {
            state: s.to_string(),
        })
        .set(*n as i64);
    }
    reg.register("pods", "Pod sandboxes by state", pods);
    let ctrs = Family::<State, Gauge>::default();
    for (s, n) in &c.containers {
        ctrs.get_or_create(&State {
            state: s.to_string(),
        })
        .set(*n as i64);
    }
    reg.register("containers", "Containers by state", ctrs);
    let monitors = Gauge::<i64, AtomicI64>::default();
    monitors.set(c.monitors as i64);
    reg.register("monitors", "Per-pod monitor processes", monitors);
    reg.register("image_pulls", "PullImage calls", ConstCounter::new(c.pulls));
    reg.register(
        "image_pull_failures",
        "PullImage calls that failed",
        ConstCounter::new(c.pull_failures),
    );
    reg.register(
        "image_pull_bytes",
        "Bytes of the images pulled (compressed content)",
        ConstCounter::<u64>::new(c.pull_bytes),
    );
    reg.register(
        "image_pull_seconds",
        "Time spent in PullImage",
        ConstCounter::<f64>::new(c.pull_seconds),
    );
    reg.register(
        "leaked_resources",
        "State dirs no pod or container record owns, from the last self-check",
        leaked.clone(),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).context("encoding metrics")?;
    Ok(out)
}

/// Serves `GET /metrics` on `addr` until the process ends; answers the bound address.
pub async fn serve(addr: &str, engine: Arc<Engine>) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("metrics.address {addr:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics.address {addr}"))?;
    let local = listener.local_addr().context("metrics listener address")?;
    let leaked = Gauge::<i64, AtomicI64>::default();
    self_check(engine.clone(), leaked.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let engine = engine.clone();
            let leaked = leaked.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let engine = engine.clone();
                    let leaked = leaked.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &engine, &leaked)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "metrics connection");
                }
            });
        }
    });
    Ok(local)
}

fn answer(
    req: &hyper::Request<hyper::body::Incoming>,
    engine: &Engine,
    leaked: &Gauge<i64, AtomicI64>,
) -> hyper::Response<Full<Bytes>> {
    let reply = |code: u16, ctype: &str, body: String| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(404, "text/plain", "only /metrics is served here\n".into());
    }
    if req.method() != hyper::Method::GET {
        return reply(405, "text/plain", "use GET\n".into());
    }
    match render(engine, leaked) {
        Ok(text) => reply(200, "text/plain; version=0.0.4; charset=utf-8", text),
        Err(e) => reply(500, "text/plain", format!("{e:#}\n")),
    }
}

/// Counts leftovers now and every [`SELF_CHECK_EVERY`]; each found is logged once per check.
fn self_check(engine: Arc<Engine>, leaked: Gauge<i64, AtomicI64>) {
    let weak = Arc::downgrade(&engine);
    drop(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SELF_CHECK_EVERY);
        loop {
            tick.tick().await;
            let Some(engine) = weak.upgrade() else { break };
            let found = tokio::task::spawn_blocking(move || engine.leftovers())
                .await
                .unwrap_or_default();
            for p in &found {
                tracing::warn!(path = %p.display(), "self-check: state dir without a record");
            }
            leaked.set(found.len() as i64);
        }
    });
}
