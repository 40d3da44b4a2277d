//! `RuntimeConfig`: the cgroup driver the kubelet must use.

use berth_api::cri::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeConfigRequest, RuntimeConfigResponse,
};
use berth_core::config::CgroupDriver as Driver;
use tonic::Status;

use crate::Cri;

pub fn handle(cri: &Cri, _req: RuntimeConfigRequest) -> Result<RuntimeConfigResponse, Status> {
    let driver = match cri.engine.info.config.runtime.cgroup_driver {
        Driver::Systemd => CgroupDriver::Systemd,
        Driver::Cgroupfs => CgroupDriver::Cgroupfs,
    };
    Ok(RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    })
}
