//! `GET /system/df` (`docker system df`): images with how many containers use them,
//! containers with their writable layers' size, volumes with theirs, and no build cache
//! (berth does not build). `POST /build/prune`, which `docker system prune` calls, answers that nothing was
//! cached, which is true.

use std::collections::HashMap;

use serde_json::json;

use crate::DockerApi;
use crate::containers::{self, list};
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::images;

pub async fn df(api: &DockerApi) -> Result<Reply, ApiError> {
    let recs = containers::all(api).await;
    // Every container counts, CRI ones too: they hold their image as much as Docker's.
    let mut users: HashMap<String, i64> = HashMap::new();
    for r in api.runtime.containers.store.list() {
        *users.entry(r.image_id.clone()).or_default() += 1;
    }
    let imgs = api.images.list();
    let layers_size = api
        .images
        .fs_usage()
        .map(|u| u.used_bytes as i64)
        .unwrap_or_else(|_| imgs.iter().map(|i| i.size as i64).sum());
    let image_rows: Vec<_> = imgs
        .iter()
        .filter(|i| !i.pinned)
        .map(|img| {
            let mut s = images::list::summary(img);
            s.base.containers = users.get(&img.id.to_string()).copied().unwrap_or(0);
            s.base.shared_size = 0;
            s
        })
        .collect();
    let now = berth_engine::containers::lifecycle::now_ns();
    let mut container_rows: Vec<_> = recs.iter().map(|r| list::summary(api, r, now)).collect();
    list::add_sizes(api, &mut container_rows, &recs).await;
    Ok(ok_json(&json!({
        "LayersSize": layers_size,
        "Images": image_rows,
        "Containers": container_rows,
        "Volumes": volumes(api).await,
        "BuildCache": [],
    })))
}

/// Every volume with its size and how many containers use it (dockerd's `UsageData`).
async fn volumes(api: &DockerApi) -> Vec<serde_json::Value> {
    let users = crate::volumes::users(api);
    let vols = api.volumes.store.list().unwrap_or_default();
    let sized = tokio::task::spawn_blocking(move || {
        vols.into_iter()
            .map(|v| {
                let size = crate::volumes::store::dir_size(&v.data);
                (v, size)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    sized
        .into_iter()
        .map(|(v, size)| {
            let mut doc = serde_json::to_value(v.to_docker()).unwrap_or_default();
            doc["UsageData"] = json!({
                "Size": size,
                "RefCount": users.get(&v.name).map_or(0, Vec::len),
            });
            doc
        })
        .collect()
}

pub fn build_prune() -> Reply {
    ok_json(&json!({ "CachesDeleted": null, "SpaceReclaimed": 0 }))
}
