//! `Version`: who we are and which CRI version we speak.

use berth_api::cri::{VersionRequest, VersionResponse};
use tonic::Status;

use crate::Cri;

/// The CRI API version this runtime implements.
pub const RUNTIME_API_VERSION: &str = "v1";

pub fn handle(cri: &Cri, _req: VersionRequest) -> Result<VersionResponse, Status> {
    Ok(VersionResponse {
        // `version` is the version of the kubelet runtime API (historically "0.1.0").
        version: "0.1.0".into(),
        runtime_name: "berth".into(),
        runtime_version: cri.engine.info.version.clone(),
        runtime_api_version: RUNTIME_API_VERSION.into(),
    })
}
