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
    let mut rx = cri.containers.events.subscribe();
    let (tx, out) = mpsc::channel::<Result<ContainerEventResponse, Status>>(STREAM_QUEUE);
    tokio::spawn(async move {
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
                    tracing::warn!(
                        dropped = n,
                        "GetContainerEvents: a subscriber fell behind; its oldest events were dropped"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}
