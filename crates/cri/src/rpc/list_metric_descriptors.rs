//! `ListMetricDescriptors`: the cAdvisor-compatible series ListPodSandboxMetrics answers.

use berth_api::cri::{ListMetricDescriptorsRequest, ListMetricDescriptorsResponse};
use tonic::Status;

use crate::Cri;
use crate::stats::metrics;

pub fn handle(
    _cri: &Cri,
    _req: ListMetricDescriptorsRequest,
) -> Result<ListMetricDescriptorsResponse, Status> {
    Ok(ListMetricDescriptorsResponse {
        descriptors: metrics::descriptors(),
    })
}
