//! `ListContainerStats`: stats of every container matching the filter (id or unique
//! prefix, pod id or prefix, labels), read concurrently.

use berth_api::cri::{ListContainerStatsRequest, ListContainerStatsResponse};
use tonic::Status;

use crate::{Cri, stats};

pub async fn handle(
    cri: &Cri,
    req: ListContainerStatsRequest,
) -> Result<ListContainerStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let recs = match f.id.is_empty() {
        // An unknown or ambiguous id matches nothing (a filter, not a lookup).
        false => cri
            .engine
            .containers
            .store
            .resolve(&f.id)
            .ok()
            .flatten()
            .into_iter()
            .collect(),
        true => cri.engine.containers.store.list(),
    };
    let pod = match f.pod_sandbox_id.is_empty() {
        true => None,
        false => match cri
            .engine
            .pods
            .store
            .resolve(&f.pod_sandbox_id)
            .ok()
            .flatten()
        {
            Some(p) => Some(p.id),
            None => return Ok(ListContainerStatsResponse { stats: Vec::new() }),
        },
    };
    let recs = recs
        .into_iter()
        .filter(|r| pod.as_ref().is_none_or(|p| &r.pod_id == p))
        .filter(|r| stats::labels_match(&r.labels, &f.label_selector))
        .collect();
    stats::prune(cri);
    Ok(ListContainerStatsResponse {
        stats: stats::containers(cri, recs).await,
    })
}
