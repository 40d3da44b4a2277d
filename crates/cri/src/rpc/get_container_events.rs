//! `GetContainerEvents`: a server stream of container and sandbox lifecycle events. Each
//! subscriber has a forwarding task between the engine's shared broadcast buffer and its
//! gRPC stream, which turns each event into its CRI message; when the client reads too slowly the buffer drops its oldest events for that
//! subscriber alone, and the number dropped is logged.

use berth_api::cri::{ContainerEventResponse, ContainerEventType, GetEventsRequest};
use berth_engine::{Event, EventKind};
use tokio::sync::{broadcast, mpsc};
use tonic::Status;
use tonic::codegen::BoxStream;

use crate::Cri;
use crate::containers::convert as cconv;
use crate::pods::convert as pconv;

/// Events queued towards one client's gRPC stream beyond the broadcast buffer.
const STREAM_QUEUE: usize = 64;

pub fn handle(
    cri: &Cri,
    _req: GetEventsRequest,
) -> Result<BoxStream<ContainerEventResponse>, Status> {
    let rx = cri.engine.events().subscribe();
    let (tx, out) = mpsc::channel::<Result<ContainerEventResponse, Status>>(STREAM_QUEUE);
    tokio::spawn(forward(rx, tx, message));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}

/// An engine event as CRI's message: a sandbox event's container_id is the pod's id, as
/// containerd sends it, and every event carries the snapshot of its pod.
fn message(ev: Event) -> ContainerEventResponse {
    let kind = match ev.kind {
        EventKind::Created => ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => ContainerEventType::ContainerDeletedEvent,
    };
    ContainerEventResponse {
        container_id: ev.id,
        container_event_type: kind as i32,
        created_at: ev.at,
        pod_sandbox_status: ev.pod.as_ref().map(pconv::status),
        containers_statuses: ev.containers.iter().map(cconv::status).collect(),
    }
}

/// Moves events to one subscriber's stream until it goes away; answers how many events it
/// lost by falling behind.
async fn forward<E: Clone, M>(
    mut rx: broadcast::Receiver<E>,
    tx: mpsc::Sender<Result<M, Status>>,
    to_message: impl Fn(E) -> M,
) -> u64 {
    let mut lost = 0;
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            // The client went away: stop holding a subscription.
            _ = tx.closed() => break,
        };
        match ev {
            Ok(ev) => {
                if tx.send(Ok(to_message(ev))).await.is_err() {
                    break;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lost += n;
                tracing::warn!(
                    dropped = n,
                    "GetContainerEvents: a subscriber fell behind; its oldest events were dropped"
                );
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i64) -> ContainerEventResponse {
        ContainerEventResponse {
            created_at: n,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_events_only() {
        let (btx, rx) = broadcast::channel(4);
        let (tx, mut out) = mpsc::channel(1);
        // Ten events before the subscriber reads any: the buffer keeps the last four.
        for n in 0..10 {
            btx.send(ev(n)).unwrap();
        }
        drop(btx);
        let fwd = tokio::spawn(forward(rx, tx, |e| e));
        let mut got = Vec::new();
        while let Some(Ok(e)) = out.recv().await {
            got.push(e.created_at);
        }
        assert_eq!(got, [6, 7, 8, 9]);
        assert_eq!(fwd.await.unwrap(), 6);
    }

    #[tokio::test]
    async fn a_gone_client_ends_the_subscription() {
        let (btx, rx) = broadcast::channel(4);
        let (tx, out) = mpsc::channel(1);
        drop(out);
        assert_eq!(forward(rx, tx, |e: ContainerEventResponse| e).await, 0);
        assert_eq!(btx.receiver_count(), 0);
    }
}
