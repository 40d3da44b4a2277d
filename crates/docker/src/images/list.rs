//! `GET /images/json` (`docker images`), with the filters dockerd offers: reference,
//! dangling, label, before, since.

use berth_core::image::Image;
use bollard_stubs::models::ImageSummary;
use serde::Serialize;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::images::{self, created_unix, labels, repo_digests, repo_tags};
use crate::names;
use crate::query::{Filters, glob};
use crate::router::Call;

/// API 1.41's summary: 1.44 dropped `VirtualSize`, which the 20.10 CLI still prints.
#[derive(Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub base: ImageSummary,
    #[serde(rename = "VirtualSize")]
    virtual_size: i64,
}

pub fn list(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["reference", "dangling", "label", "before", "since"])?;
    let mut keep = Vec::new();
    for img in api.images.list() {
        if matches(&filters, &img, api)? {
            keep.push(img);
        }
    }
    // Newest first, as `docker images` shows them.
    keep.sort_by_key(|i| std::cmp::Reverse(created_unix(i)));
    let mut out: Vec<Summary> = keep.iter().map(summary).collect();
    // Like dockerd, a reference filter also narrows the names shown to those it matched.
    if filters.0.contains_key("reference") {
        for s in &mut out {
            s.base.repo_tags.retain(|n| reference_match(&filters, n));
            s.base.repo_digests.retain(|n| reference_match(&filters, n));
        }
    }
    Ok(ok_json(&out))
}

/// docker's `FamiliarMatch`: a pattern matches a name with its tag or digest, or the
/// repository alone.
fn reference_match(f: &Filters, name: &str) -> bool {
    f.values("reference")
        .any(|p| glob(p, name) || glob(p, names::repo_of(name)))
}

pub fn summary(img: &Image) -> Summary {
    let size = img.size as i64;
    Summary {
        base: ImageSummary {
            id: img.id.to_string(),
            parent_id: String::new(),
            repo_tags: repo_tags(img),
            repo_digests: repo_digests(img),
            created: created_unix(img),
            size,
            shared_size: -1,
            labels: labels(img),
            containers: -1,
            manifests: None,
            descriptor: None,
        },
        virtual_size: size,
    }
}

/// Dangling images (no tag and no digest) are never kept by berth's store: an image that
/// loses its last name is removed.
fn is_dangling(img: &Image) -> bool {
    img.repo_tags.is_empty() && img.repo_digests.is_empty()
}

fn matches(f: &Filters, img: &Image, api: &DockerApi) -> Result<bool, ApiError> {
    if let Some(d) = f.bool("dangling")?
        && d != is_dangling(img)
    {
        return Ok(false);
    }
    if f.0.contains_key("reference")
        && repo_tags(img)
            .iter()
            .chain(&repo_digests(img))
            .all(|n| !reference_match(f, n))
    {
        return Ok(false);
    }
    let have = labels(img);
    for want in f.values("label") {
        let ok = match want.split_once('=') {
            Some((k, v)) => have.get(k).is_some_and(|x| x == v),
            None => have.contains_key(want.as_str()),
        };
        if !ok {
            return Ok(false);
        }
    }
    let created = created_unix(img);
    for name in f.values("before") {
        if created >= created_unix(&images::find(api, name)?) {
            return Ok(false);
        }
    }
    for name in f.values("since") {
        if created <= created_unix(&images::find(api, name)?) {
            return Ok(false);
        }
    }
    Ok(true)
}
