//! `ListPodSandboxStats`: stats of every pod matching the filter (id or unique prefix,
//! labels), with their containers'.

use berth_api::cri::{ListPodSandboxStatsRequest, ListPodSandboxStatsResponse};
use tonic::Status;

use crate::{Cri, stats};

pub async fn handle(
    cri: &Cri,
    req: ListPodSandboxStatsRequest,
) -> Result<ListPodSandboxStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let pods = match f.id.is_empty() {
        false => cri
            .engine
            .pods
            .store
            .resolve(&f.id)
            .ok()
            .flatten()
            .into_iter()
            .collect(),
        true => cri.engine.pods.store.list(),
    };
    let pods = pods
        .into_iter()
        .filter(|p| stats::labels_match(&p.labels, &f.label_selector))
        .collect();
    stats::prune(cri);
    Ok(ListPodSandboxStatsResponse {
        stats: stats::pods(cri, pods).await,
    })
}
