//! `POST /images/{name}/tag?repo=&tag=` (`docker tag`) and `GET /images/search`.

use berth_core::Reference;
use http::StatusCode;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, no_content};
use crate::images;
use crate::router::Call;

pub async fn tag(call: &Call, api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let repo = call.query.non_empty("repo").ok_or_else(|| {
        ApiError::bad_request(
            "repo is required: the repository to tag into, e.g. repo=myrepo&tag=1",
        )
    })?;
    let text = match call.query.non_empty("tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let target: Reference = text
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    if target.digest().is_some() {
        return Err(ApiError::bad_request(format!(
            "refusing to create a tag with a digest reference: {text}"
        )));
    }
    let img = images::find(api, name)?;
    api.images.tag(&img.id.to_string(), &target).await?;
    crate::images::image_event(
        api,
        "tag",
        &img.id.to_string(),
        &crate::names::familiar(&target.to_string()),
    );
    Ok(no_content(StatusCode::CREATED))
}

/// dockerd searches Docker Hub's index; berth keeps no index and reaches registries only
/// to pull by name.
pub fn search() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "image search is not available: berth has no registry index to search (it reaches registries only to pull images by name); pull by full name, e.g. docker pull registry.example:5000/app:1",
    )
}
