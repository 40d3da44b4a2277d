//! `ImageStatus`: one image, or an empty answer when it is absent (as the CRI asks).

use std::collections::HashMap;

use berth_api::cri::{ImageStatusRequest, ImageStatusResponse};
use tonic::Status;

use super::convert;
use crate::Cri;

pub fn handle(cri: &Cri, req: ImageStatusRequest) -> Result<ImageStatusResponse, Status> {
    let name = req.image.map(|i| i.image).unwrap_or_default();
    if name.trim().is_empty() {
        return Err(Status::invalid_argument(
            "ImageStatus: image.image is empty",
        ));
    }
    let Some(img) = cri.engine.images.find(&name) else {
        return Ok(ImageStatusResponse::default());
    };
    let mut info = HashMap::new();
    if req.verbose {
        let verbose = serde_json::json!({
            "id": img.id.to_string(),
            "diffIDs": img.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "snapshots": img.snapshots,
            "imageSpec": img.config,
        });
        info.insert("info".to_string(), verbose.to_string());
    }
    Ok(ImageStatusResponse {
        image: Some(convert::image(&img)),
        info,
    })
}
