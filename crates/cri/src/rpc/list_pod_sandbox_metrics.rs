//! `ListPodSandboxMetrics`: cAdvisor-compatible series of every pod and its containers,
//! from the same reads as ListPodSandboxStats.

use berth_api::cri::{
    ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse, PodSandboxMetrics,
};
use tonic::Status;

use crate::Cri;
use crate::stats::{self, metrics};

pub async fn handle(
    cri: &Cri,
    _req: ListPodSandboxMetricsRequest,
) -> Result<ListPodSandboxMetricsResponse, Status> {
    stats::prune(cri);
    let pods = stats::pods(cri, cri.engine.pods.store.list()).await;
    let pod_metrics = pods
        .iter()
        .map(|p| {
            let id = p
                .attributes
                .as_ref()
                .map(|a| a.id.clone())
                .unwrap_or_default();
            let containers = p
                .linux
                .as_ref()
                .map(|l| l.containers.as_slice())
                .unwrap_or(&[]);
            PodSandboxMetrics {
                pod_sandbox_id: id,
                metrics: metrics::pod(p),
                container_metrics: containers
                    .iter()
                    .map(|c| {
                        let cid = c.attributes.as_ref().map(|a| a.id.as_str()).unwrap_or("");
                        let image = cri
                            .engine
                            .containers
                            .store
                            .get(cid)
                            .map(|r| r.image_ref)
                            .unwrap_or_default();
                        metrics::container(c, &image)
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(ListPodSandboxMetricsResponse { pod_metrics })
}
