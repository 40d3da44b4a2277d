//! `ListContainers` with filters: id prefix, state, pod, labels.

use berth_api::cri::{ListContainersRequest, ListContainersResponse};
use tonic::Status;

use crate::Cri;
use crate::containers::convert;

pub async fn handle(
    cri: &Cri,
    req: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let containers = cri
        .engine
        .list_containers()
        .await
        .iter()
        .filter(|r| convert::matches(r, &filter))
        .map(convert::container)
        .collect();
    Ok(ListContainersResponse { containers })
}
