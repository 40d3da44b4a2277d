//! `UpdateRuntimeConfig`: the kubelet's pod CIDR; new pods get addresses from it.

use berth_api::cri::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};
use berth_core::pod::ipam::Subnet;
use tonic::Status;

use crate::Cri;
use crate::error::pod_error_status;

pub async fn handle(
    cri: &Cri,
    req: UpdateRuntimeConfigRequest,
) -> Result<UpdateRuntimeConfigResponse, Status> {
    let cidrs = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    // Dual-stack clusters send "v4cidr,v6cidr"; the built-in network takes the IPv4 one.
    for cidr in cidrs.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let subnet: Subnet = cidr
            .parse()
            .map_err(|e: berth_core::pod::ipam::IpamError| {
                Status::invalid_argument(format!("UpdateRuntimeConfig: pod_cidr: {e}"))
            })?;
        if subnet.is_ipv4() {
            cri.engine
                .pods
                .ports
                .network
                .set_pod_cidr(subnet)
                .await
                .map_err(pod_error_status)?;
            tracing::info!(%subnet, "pod CIDR updated");
        }
    }
    Ok(UpdateRuntimeConfigResponse {})
}
