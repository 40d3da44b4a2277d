//! The image endpoints, over berth-core's `ImageStore` port.

pub mod archive;
pub mod change;
pub mod commit;
pub mod inspect;
pub mod list;
pub mod pull;
pub mod push;
pub mod remove;
pub mod tag;

use berth_core::image::Image;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::DockerApi;
use crate::error::ApiError;
use crate::names;

/// The image `name` names, the way dockerd looks names up (id, id prefix, reference,
/// digest), or Docker's 404.
pub fn find(api: &DockerApi, name: &str) -> Result<Image, ApiError> {
    api.images
        .find(name)
        .ok_or_else(|| ApiError::no_such_image(&names::shown(name)))
}

/// The image config's `created`, as written (RFC 3339), or "".
pub fn created_text(img: &Image) -> String {
    img.config
        .get("created")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// `created` in Unix seconds (0 when absent or unreadable, as dockerd does).
pub fn created_unix(img: &Image) -> i64 {
    OffsetDateTime::parse(&created_text(img), &Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// Unix seconds of an RFC 3339 text (a history entry's `created`).
pub fn unix_of(text: &str) -> i64 {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// The image's labels (`config.Labels`).
pub fn labels(img: &Image) -> std::collections::HashMap<String, String> {
    img.config
        .get("config")
        .and_then(|c| c.get("Labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// Tags and digests in dockerd's familiar form.
pub fn repo_tags(img: &Image) -> Vec<String> {
    img.repo_tags.iter().map(|t| names::familiar(t)).collect()
}

pub fn repo_digests(img: &Image) -> Vec<String> {
    img.repo_digests
        .iter()
        .map(|t| names::familiar(t))
        .collect()
}

/// An image event (`pull`, `tag`, `untag`, `delete`…) about image `id` under `name`.
pub fn image_event(api: &DockerApi, action: &str, id: &str, name: &str) {
    let attrs = std::collections::HashMap::from([("name".to_string(), name.to_string())]);
    api.events
        .emit(crate::events::Kind::Image, action, id, attrs);
}
