//! `DELETE /images/{name}` (`docker rmi`) and `POST /images/prune` (`docker image prune`),
//! answering dockerd's list of `{"Untagged": …}` / `{"Deleted": …}`.

use std::collections::BTreeSet;

use berth_core::Reference;
use berth_core::image::Image;
use bollard_stubs::models::{ImageDeleteResponseItem, ImagePruneResponse};

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::images::{self, labels};
use crate::names;
use crate::router::Call;

fn untagged(name: &str) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: Some(names::familiar(name)),
        deleted: None,
    }
}

fn deleted(img: &Image) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: None,
        deleted: Some(img.id.to_string()),
    }
}

/// Everything removing the whole image reports: every name, then the image.
fn all_gone(img: &Image) -> Vec<ImageDeleteResponseItem> {
    img.repo_tags
        .iter()
        .chain(&img.repo_digests)
        .map(|n| untagged(n))
        .chain(std::iter::once(deleted(img)))
        .collect()
}

pub async fn delete(call: &Call, api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let force = call.query.bool("force");
    let img = images::find(api, name)?;
    if img.pinned {
        return Err(ApiError::conflict(format!(
            "conflict: unable to remove {}: the image is pinned by berth (image.pause_image, used by pod sandboxes)",
            names::shown(name)
        )));
    }
    // A tag of the image removes that tag only, and the image with its last tag.
    let tag = name
        .parse::<Reference>()
        .ok()
        .filter(|r| r.digest().is_none())
        .and_then(|r| r.tagged_name())
        .filter(|t| img.repo_tags.contains(t));
    let report = match tag {
        Some(t) if img.repo_tags.len() > 1 => {
            api.images.remove(&t).await?;
            vec![untagged(&t)]
        }
        Some(t) => {
            in_use(api, &img, name, force)?;
            api.images.remove(&t).await?;
            all_gone(&img)
        }
        None => {
            in_use(api, &img, name, force)?;
            let repos: BTreeSet<&str> = img.repo_tags.iter().map(|t| names::repo_of(t)).collect();
            if repos.len() > 1 && !force {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &img.id.hex()[..12]
                )));
            }
            api.images.remove(&img.id.to_string()).await?;
            all_gone(&img)
        }
    };
    for item in &report {
        match (&item.untagged, &item.deleted) {
            (Some(t), _) => images::image_event(api, "untag", &img.id.to_string(), t),
            (_, Some(id)) => images::image_event(api, "delete", id, id),
            _ => {}
        }
    }
    Ok(ok_json(&report))
}

/// Dangling images (no tag, no digest) are pruned, or with `dangling=false` (`--all`)
/// every image no container uses (CRI containers included). berth's store removes an
/// image when it loses its last name, so dangling ones are rare.
pub async fn prune(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["dangling", "label", "label!", "until"])?;
    let all = filters.bool("dangling")? == Some(false);
    let until = match filters.values("until").next() {
        Some(u) => Some(crate::containers::prune::until_ns(u)?),
        None => None,
    };
    let used = used_images(api);
    let mut report = Vec::new();
    let mut reclaimed = 0i64;
    for img in api.images.list() {
        let dangling = img.repo_tags.is_empty() && img.repo_digests.is_empty();
        if img.pinned || !(dangling || all) || used.contains_key(&img.id.to_string()) {
            continue;
        }
        if until.is_some_and(|u| images::created_unix(&img) * 1_000_000_000 >= u) {
            continue;
        }
        let have = labels(&img);
        let label_ok = |want: &String| match want.split_once('=') {
            Some((k, v)) => have.get(k).is_some_and(|x| x == v),
            None => have.contains_key(want.as_str()),
        };
        if !filters.values("label").all(label_ok) || filters.values("label!").any(label_ok) {
            continue;
        }
        api.images.remove(&img.id.to_string()).await?;
        reclaimed += img.size as i64;
        report.extend(all_gone(&img));
        images::image_event(api, "delete", &img.id.to_string(), &img.id.to_string());
    }
    Ok(ok_json(&ImagePruneResponse {
        images_deleted: (!report.is_empty()).then_some(report),
        space_reclaimed: Some(reclaimed),
    }))
}

/// dockerd's rule for removing an image (not just one of its tags): never under a running
/// container; under a stopped one only when forced.
fn in_use(api: &DockerApi, img: &Image, name: &str, force: bool) -> Result<(), ApiError> {
    let Some(users) = used_images(api).remove(&img.id.to_string()) else {
        return Ok(());
    };
    let shown = names::shown(name);
    let short = |id: &str| id.chars().take(12).collect::<String>();
    if let Some(r) = users.iter().find(|(_, running)| *running) {
        return Err(ApiError::conflict(format!(
            "conflict: unable to delete {shown} (cannot be forced) - image is being used by running container {}",
            short(&r.0)
        )));
    }
    if !force {
        return Err(ApiError::conflict(format!(
            "conflict: unable to remove repository reference \"{shown}\" (must force) - container {} is using its referenced image {}",
            short(&users[0].0),
            short(img.id.hex())
        )));
    }
    Ok(())
}

/// Image id → the containers (id, running) made from it: Docker's and the CRI's.
fn used_images(api: &DockerApi) -> std::collections::HashMap<String, Vec<(String, bool)>> {
    let mut out: std::collections::HashMap<String, Vec<(String, bool)>> = Default::default();
    for r in api.runtime.containers.store.list() {
        let running = r.state == berth_core::container::record::ContainerState::Running;
        out.entry(r.image_id.clone())
            .or_default()
            .push((r.id, running));
    }
    out
}
