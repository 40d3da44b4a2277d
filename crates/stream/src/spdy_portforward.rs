//! Port-forward over SPDY (directly, or tunnelled in a WebSocket): the client opens an
//! error stream and a data stream per connection, tied by `requestid`, naming the `port`.
//! Each complete pair is forwarded on its own; a half that waits too long for its partner
//! is dropped with an error, like the kubelet.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_spdy::{Acceptor, Session, Stream};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::forward::{Target, forward};

#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
    since: Option<Instant>,
}

fn header<'a>(s: &'a Stream, name: &str) -> &'a str {
    s.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The request a stream belongs to. Clients older than the `requestid` header open the
/// error stream, then the data stream, so consecutive odd ids pair up (kubelet's fallback).
fn request_id(s: &Stream, data: bool) -> String {
    match header(s, "requestid") {
        "" if data => s.id().saturating_sub(2).to_string(),
        "" => s.id().to_string(),
        id => id.to_string(),
    }
}

async fn fail(mut error: Option<Stream>, data: Option<Stream>, msg: String) {
    tracing::debug!("port-forward: {msg}");
    if let Some(e) = error.as_mut() {
        let _ = e.write_all(msg.as_bytes()).await;
        let _ = e.shutdown().await;
    }
    // FIN, not RST: the client reads the data stream to its end, then the error.
    if let Some(mut d) = data {
        let _ = d.shutdown().await;
    }
}

async fn forward_pair(target: Target, data: Stream, error: Stream) {
    let port_str = header(&data, "port").to_string();
    let port = match port_str.parse::<u16>() {
        Ok(p) if p > 0 => p,
        Ok(_) => {
            let msg = format!("port {port_str:?} must be > 0");
            return fail(Some(error), Some(data), msg).await;
        }
        Err(e) => {
            let msg = format!("unable to parse {port_str:?} as a port: {e}");
            return fail(Some(error), Some(data), msg).await;
        }
    };
    let (rd, wr) = tokio::io::split(data);
    forward(
        &target,
        port,
        Box::new(rd),
        Box::new(wr),
        Box::new(error),
        false,
    )
    .await;
}

/// Serves the connection's port-forward streams until the client closes it.
pub async fn serve(
    session: Session,
    mut acceptor: Acceptor,
    target: Target,
    creation_timeout: Duration,
) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            s = acceptor.accept() => {
                let Some(stream) = s else { break };
                let kind = header(&stream, "streamtype").to_string();
                let is_data = match kind.as_str() {
                    "data" => true,
                    "error" => false,
                    other => {
                        tracing::debug!("port-forward: invalid stream type {other:?}");
                        stream.reset();
                        continue;
                    }
                };
                let id = request_id(&stream, is_data);
                let pair = pending.entry(id.clone()).or_default();
                pair.since.get_or_insert_with(Instant::now);
                let slot = if is_data { &mut pair.data } else { &mut pair.error };
                if slot.is_some() {
                    let msg = format!("error processing stream for request {id}: {kind} stream already assigned");
                    tracing::debug!("port-forward: {msg}");
                    stream.reset();
                    continue;
                }
                *slot = Some(stream);
                if pair.data.is_some() && pair.error.is_some()
                    && let Some(Pair { data: Some(d), error: Some(e), .. }) = pending.remove(&id)
                {
                    tasks.spawn(forward_pair(target.clone(), d, e));
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let expired: Vec<String> = pending
                    .iter()
                    .filter(|(_, p)| p.since.is_some_and(|t| now.duration_since(t) >= creation_timeout))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    if let Some(p) = pending.remove(&id) {
                        let msg = format!("request {id}: timed out waiting for streams");
                        tasks.spawn(fail(p.error, p.data, msg));
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = session.closed() => break,
        }
    }
    // Dropping the set aborts the forwards still running: the connection is gone.
    drop(tasks);
    session.close().await;
}
