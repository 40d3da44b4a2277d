//! `PullImage`: fetch an image from its registry (or find it complete already).

use berth_api::cri::{AuthConfig, PullImageRequest, PullImageResponse};
use berth_core::Reference;
use berth_core::image::RegistryAuth;
use tonic::Status;

use crate::Cri;
use crate::error::image_error_status;

pub async fn handle(cri: &Cri, req: PullImageRequest) -> Result<PullImageResponse, Status> {
    let name = req.image.map(|i| i.image).unwrap_or_default();
    if name.trim().is_empty() {
        return Err(Status::invalid_argument(
            "PullImage: image.image is empty; give an image reference such as busybox:latest",
        ));
    }
    let reference: Reference =
        name.parse()
            .map_err(|e: berth_core::reference::ReferenceError| {
                Status::invalid_argument(e.to_string())
            })?;
    let auth = req.auth.map(auth_of).filter(|a| !a.is_empty());
    let start = std::time::Instant::now();
    let img = cri.engine.images.pull(&reference, auth).await;
    cri.engine
        .pulls
        .record(img.as_ref().ok().map(|i| i.size), start.elapsed());
    let img = img.map_err(image_error_status)?;
    Ok(PullImageResponse {
        image_ref: img.id.to_string(),
    })
}

fn auth_of(a: AuthConfig) -> RegistryAuth {
    RegistryAuth {
        username: a.username,
        password: a.password,
        auth: a.auth,
        server_address: a.server_address,
        identity_token: a.identity_token,
        registry_token: a.registry_token,
    }
}
