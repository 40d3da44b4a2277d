//! `ListContainers` with filters: id prefix, state, pod, labels.

use berth_api::cri::{ListContainersRequest, ListContainersResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::{convert, lifecycle};

pub async fn handle(
    cri: &Cri,
    req: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    let c = &cri.containers;
    let filter = req.filter.unwrap_or_default();
    let mut out = Vec::new();
    for mut rec in c.store.list() {
        // States must be current for the state filter to mean anything.
        let _ = lifecycle::refresh(c, &mut rec).await;
        if convert::matches(&rec, &filter) {
            out.push(convert::container(&rec));
        }
    }
    Ok(ListContainersResponse { containers: out })
}
