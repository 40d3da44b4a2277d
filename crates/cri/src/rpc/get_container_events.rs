//! `GetContainerEvents`: a server stream of container and sandbox lifecycle events. Each
//! subscriber has a forwarding task between the shared broadcast buffer and its gRPC
//! stream; when the client reads too slowly the buffer drops its oldest events for that
//! subscriber alone, and the number dropped is logged.

use berth_api::cri::{ContainerEventResponse, GetEventsRequest};
use tokio::sync::{broadcast, mpsc};
use tonic::Status;
use tonic::codegen::BoxStream;

use crate::Cri;

/// Events queued towards one client's gRPC stream beyond the broadcast buffer.
const STREAM_QUEUE: usize = 64;

pub fn handle(
    cri: &Cri,
    _req: GetEventsRequest,
) -> Result<BoxStream<ContainerEventResponse>, Status> {
    let rx = cri.containers.events.subscribe();
    let (tx, out) = mpsc::channel::<Result<ContainerEventResponse, Status>>(STREAM_QUEUE);
    tokio::spawn(forward(rx, tx));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}

/// Moves events to one subscriber's stream until it goes away; answers how many events it
/// lost by falling behind.
async fn forward(
    mut rx: broadcast::Receiver<ContainerEventResponse>,
    tx: mpsc::Sender<Result<ContainerEventResponse, Status>>,
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
                if tx.send(Ok(ev)).await.is_err() {
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
        let fwd = tokio::spawn(forward(rx, tx));
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
        assert_eq!(forward(rx, tx).await, 0);
        assert_eq!(btx.receiver_count(), 0);
    }
}
