//! `ListImages`, optionally filtered to one image by name or id.

use berth_api::cri::{ListImagesRequest, ListImagesResponse};
use tonic::Status;

use super::convert;
use crate::Cri;

pub fn handle(cri: &Cri, req: ListImagesRequest) -> Result<ListImagesResponse, Status> {
    let wanted = req
        .filter
        .and_then(|f| f.image)
        .map(|spec| spec.image)
        .filter(|s| !s.is_empty());
    let images = match wanted {
        // Like containerd: the filter names one image (by any of its names or its id).
        Some(name) => cri.engine.images.find(&name).into_iter().collect(),
        None => cri.engine.images.list(),
    };
    Ok(ListImagesResponse {
        images: images.iter().map(convert::image).collect(),
    })
}
