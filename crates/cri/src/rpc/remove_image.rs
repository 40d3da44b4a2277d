//! `RemoveImage` by id, tag or digest. Idempotent: an absent image is success.

use berth_api::cri::{RemoveImageRequest, RemoveImageResponse};
use tonic::Status;

use crate::Cri;
use crate::error::image_error_status;

pub async fn handle(cri: &Cri, req: RemoveImageRequest) -> Result<RemoveImageResponse, Status> {
    let name = req.image.map(|i| i.image).unwrap_or_default();
    if name.trim().is_empty() {
        return Err(Status::invalid_argument(
            "RemoveImage: image.image is empty",
        ));
    }
    cri.engine
        .images
        .remove(&name)
        .await
        .map_err(image_error_status)?;
    Ok(RemoveImageResponse {})
}
