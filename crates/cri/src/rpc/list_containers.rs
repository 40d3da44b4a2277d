//! `ListContainers` with filters: id prefix, state, pod, labels.

use berth_api::cri::{ListContainersRequest, ListContainersResponse};
use futures::StreamExt as _;
use tonic::Status;

use crate::Cri;
use crate::containers::{convert, lifecycle};

/// Containers whose state is asked of their monitors at once. Each answer is a round trip
/// to another process; one after the other, 100 running containers cost the kubelet's
/// relist (every second) 50 ms.
const CONCURRENT_REFRESHES: usize = 32;

pub async fn handle(
    cri: &Cri,
    req: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    let c = &cri.containers;
    let filter = req.filter.unwrap_or_default();
    // States must be current for the state filter to mean anything.
    let out = futures::stream::iter(c.store.list())
        .map(|mut rec| async move {
            let _ = lifecycle::refresh(c, &mut rec).await;
            rec
        })
        .buffered(CONCURRENT_REFRESHES)
        .filter(|rec| std::future::ready(convert::matches(rec, &filter)))
        .map(|rec| convert::container(&rec))
        .collect()
        .await;
    Ok(ListContainersResponse { containers: out })
}
