//! `ListPodSandbox` with filters: id (or prefix), state, label selector.

use berth_api::cri::{ListPodSandboxRequest, ListPodSandboxResponse};
use tonic::Status;

use crate::Cri;
use crate::pods::convert;

pub fn handle(cri: &Cri, req: ListPodSandboxRequest) -> Result<ListPodSandboxResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let items = cri
        .engine
        .select_pods(|r| convert::matches(r, &filter).then(|| convert::sandbox(r)));
    Ok(ListPodSandboxResponse { items })
}
