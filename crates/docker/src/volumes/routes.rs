//! The `/volumes` endpoints: `GET /volumes` (ls, filters dangling, name, label, driver),
//! `POST /volumes/create`, `GET /volumes/{name}`, `DELETE /volumes/{name}?force=` and
//! `POST /volumes/prune` (API 1.41: every unused volume, filters label and label!).

use std::collections::BTreeMap;

use bollard_stubs::models::{VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};
use http::StatusCode;

use super::store::{Vol, anonymous_name};
use super::{MountPoint, driver, users};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json, no_content, ok_json};
use crate::query::Filters;
use crate::router::Call;

fn no_such(name: &str) -> ApiError {
    ApiError::not_found(format!("get {name}: no such volume"))
}

/// `label=k` (has k) and `label=k=v`; all must hold.
fn labels_match<'a>(mut wanted: impl Iterator<Item = &'a String>, v: &Vol) -> bool {
    wanted.all(|l| match l.split_once('=') {
        Some((k, val)) => v.meta.labels.get(k).is_some_and(|x| x == val),
        None => v.meta.labels.contains_key(l.as_str()),
    })
}

pub async fn list(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["dangling", "name", "label", "driver"])?;
    let dangling = filters.bool("dangling")?;
    // dockerd matches names as regular expressions (so a plain word matches a part).
    let names = filters
        .values("name")
        .map(|n| {
            regex::Regex::new(n)
                .map_err(|e| ApiError::bad_request(format!("invalid filter 'name={n}': {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let used = users(api);
    let vols: Vec<_> = api
        .volumes
        .store
        .list()?
        .into_iter()
        .filter(|v| dangling.is_none_or(|d| d != used.contains_key(&v.name)))
        .filter(|v| names.is_empty() || names.iter().any(|re| re.is_match(&v.name)))
        .filter(|v| labels_match(filters.values("label"), v))
        .filter(|_| filters.values("driver").all(|d| d == super::DRIVER))
        .map(|v| v.to_docker())
        .collect();
    Ok(ok_json(&VolumeListResponse {
        volumes: Some(vols),
        warnings: Some(Vec::new()),
    }))
}

pub async fn create(api: &DockerApi, body: &[u8]) -> Result<Reply, ApiError> {
    let req: VolumeCreateRequest = if body.is_empty() {
        VolumeCreateRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?
    };
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(anonymous_name);
    driver::check_driver(&name, req.driver.as_deref().unwrap_or(""))?;
    let options = driver::check_options(&name, req.driver_opts.iter().flatten())?;
    let labels: BTreeMap<String, String> = req.labels.unwrap_or_default().into_iter().collect();
    let _g = api.volumes.lock.lock().await;
    let (vol, made) = api.volumes.store.create(&name, labels, options)?;
    if made {
        super::event(api, "create", &name);
    }
    Ok(json(StatusCode::CREATED, &vol.to_docker()))
}

pub async fn inspect(api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let vol = api.volumes.store.get(name).ok_or_else(|| no_such(name))?;
    Ok(ok_json(&vol.to_docker()))
}

pub async fn remove(call: &Call, api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let _g = api.volumes.lock.lock().await;
    if api.volumes.store.get(name).is_none() {
        // dockerd: force removes what is there and does not mind what is not.
        return if call.query.bool("force") {
            Ok(no_content(StatusCode::NO_CONTENT))
        } else {
            Err(no_such(name))
        };
    }
    if let Some(ids) = users(api).get(name) {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            ids.join(", ")
        )));
    }
    api.volumes.store.remove_async(name).await?;
    super::event(api, "destroy", name);
    Ok(no_content(StatusCode::NO_CONTENT))
}

pub async fn prune(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    // `all` is what newer CLIs send (API 1.42 pruned only anonymous volumes by default);
    // under 1.41 every unused volume goes either way.
    filters.only(&["label", "label!", "all"])?;
    filters.bool("all")?;
    let _g = api.volumes.lock.lock().await;
    let used = users(api);
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for v in api.volumes.store.list()? {
        if used.contains_key(&v.name)
            || !labels_match(filters.values("label"), &v)
            || label_excluded(&filters, &v)
        {
            continue;
        }
        reclaimed += api.volumes.store.remove_async(&v.name).await?;
        super::event(api, "destroy", &v.name);
        deleted.push(v.name);
    }
    Ok(ok_json(&VolumePruneResponse {
        volumes_deleted: Some(deleted),
        space_reclaimed: Some(i64::try_from(reclaimed).unwrap_or(i64::MAX)),
    }))
}

/// `label!=k` / `label!=k=v`: volumes carrying that label are kept.
fn label_excluded(filters: &Filters, v: &Vol) -> bool {
    filters.values("label!").any(|l| match l.split_once('=') {
        Some((k, val)) => v.meta.labels.get(k).is_some_and(|x| x == val),
        None => v.meta.labels.contains_key(l.as_str()),
    })
}

/// `rm -v` (and `--rm`): the removed container's anonymous volumes go too, unless another
/// container uses them; named ones stay (dockerd's rule). Called after the container's pod
/// record is gone, so it no longer counts as a user.
pub async fn remove_anonymous(api: &DockerApi, points: &[MountPoint]) {
    let anon: Vec<&MountPoint> = points
        .iter()
        .filter(|m| m.kind == super::KIND_VOLUME && !m.named)
        .collect();
    if anon.is_empty() {
        return;
    }
    let _g = api.volumes.lock.lock().await;
    let used = users(api);
    for m in anon {
        if used.contains_key(&m.name) || api.volumes.store.get(&m.name).is_none() {
            continue;
        }
        match api.volumes.store.remove_async(&m.name).await {
            Ok(_) => super::event(api, "destroy", &m.name),
            Err(e) => {
                tracing::warn!(volume = %m.name, error = %e, "removing a removed container's anonymous volume")
            }
        }
    }
}
