//! `POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=` (`docker
//! commit`): the container's writable layer becomes a new image on top of its image, with
//! the container's Config (and the `--change` instructions) as the image's run config.
//! A running container is paused meanwhile unless `pause=0`, as dockerd does.

use berth_core::Reference;
use berth_core::container::record::ContainerState;
use berth_core::image::CommitRequest;
use http::StatusCode;
use serde_json::{Value, json};

use crate::DockerApi;
use crate::containers::{self, from_engine, inspect};
use crate::error::ApiError;
use crate::http::{Reply, json as json_reply};
use crate::images::{self, change};
use crate::router::Call;

/// `repo` (+ `tag`) as a tag reference; None when no repo is given.
pub fn target(call: &Call) -> Result<Option<Reference>, ApiError> {
    let Some(repo) = call.query.non_empty("repo") else {
        return Ok(None);
    };
    let text = match call.query.non_empty("tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let r: Reference = text
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    if r.digest().is_some() {
        return Err(ApiError::bad_request(format!(
            "refusing to create a tag with a digest reference: {text}"
        )));
    }
    Ok(Some(r))
}

pub async fn commit(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let q = &call.query;
    let key = q
        .non_empty("container")
        .ok_or_else(|| ApiError::bad_request("container is required: the container to commit"))?;
    let r = containers::find_synced(api, key).await?;
    let tag = target(call)?;
    let parent = images::find(api, &r.image_id)?;
    let st = containers::stored(api, &r);
    let pod = api.runtime.pod(&r.pod_id).ok();
    let img_cfg = inspect::image_config(api, &r);
    let run = inspect::run_config(api, &r, &st.body, pod.as_ref(), &img_cfg);
    let mut config = serde_json::to_value(&run)
        .map_err(|e| ApiError::internal(format!("encoding the container config: {e}")))?;
    config["Image"] = json!(parent.id.to_string());
    // The image's labels stay unless the container set its own value.
    let mut labels = images::labels(&parent);
    if let Some(own) = config["Labels"].as_object() {
        for (k, v) in own {
            labels.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    config["Labels"] = json!(labels);
    change::apply(&mut config, &q.all("changes"))?;
    let pause = q.get("pause").is_none() || q.bool("pause");
    let pause = pause && r.state == ContainerState::Running && !r.paused;
    if pause {
        api.runtime
            .pause_container(&r.id)
            .await
            .map_err(from_engine)?;
    }
    let req = CommitRequest {
        upper: Some(r.bundle.join("upper")),
        parent: Some(parent.id.clone()),
        created_by: None,
        config,
        container: r.id.clone(),
        comment: q.get("comment").unwrap_or_default().to_string(),
        author: q.get("author").unwrap_or_default().to_string(),
        tag,
    };
    let res = api.images.commit(req).await;
    if pause && let Err(e) = api.runtime.unpause_container(&r.id).await {
        tracing::warn!(container = %r.id, error = %e, "unpausing after a commit failed");
    }
    let img = res?;
    let shown = img.repo_tags.first().cloned().unwrap_or_default();
    crate::events::container_event(
        api,
        &r,
        "commit",
        vec![("comment", q.get("comment").unwrap_or_default().to_string())],
    );
    if !shown.is_empty() {
        images::image_event(
            api,
            "tag",
            &img.id.to_string(),
            &crate::names::familiar(&shown),
        );
    }
    Ok(json_reply(
        StatusCode::CREATED,
        &json!({"Id": img.id.to_string()}),
    ))
}

/// A run config (`config` of an image config) with `--change` applied, for import.
pub fn import_config(changes: &[&str]) -> Result<Value, ApiError> {
    let mut config = json!({});
    change::apply(&mut config, changes)?;
    Ok(config)
}
