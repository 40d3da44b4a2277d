//! `GET /containers/{id}/changes` (`docker diff`) and `GET /containers/{id}/export`
//! (`docker export`): the container's writable layer compared with its image's layers,
//! and its whole root filesystem (the overlay mount, made again if it is not there) as a
//! tar stream.

use berth_core::image::ChangeKind;
use serde::Serialize;

use super::{find, from_engine};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json, stream_bounded};
use crate::images;
use crate::tarstream::BodyWriter;

#[derive(Serialize)]
struct Change {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: u8,
}

pub async fn changes(api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let r = find(api, key)?;
    // An image removed since (`rmi -f`) leaves nothing to compare with: all is added.
    let lowers = api
        .images
        .find(&r.image_id)
        .map(|i| i.snapshots)
        .unwrap_or_default();
    let list = api.images.changes(&r.bundle.join("upper"), &lowers).await?;
    let out: Vec<Change> = list
        .into_iter()
        .map(|c| Change {
            path: c.path,
            kind: match c.kind {
                ChangeKind::Modified => 0,
                ChangeKind::Added => 1,
                ChangeKind::Deleted => 2,
            },
        })
        .collect();
    Ok(ok_json(&out))
}

pub async fn export(api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let r = find(api, key)?;
    let img = images::find(api, &r.image_id)?;
    // The mount stays from create to removal; a container from before a restart of
    // berthd may need it made again (mount keeps one that is there).
    let rootfs = api
        .runtime
        .containers
        .ports
        .rootfs
        .mount(&r.bundle, &img.snapshots, false)
        .await
        .map_err(|e| from_engine(e.into()))?;
    let (w, rx) = BodyWriter::new();
    let store = api.images.clone();
    tokio::spawn(async move {
        if let Err(e) = store.export_tree(&rootfs, Box::new(w)).await {
            tracing::warn!(container = %r.id, error = %e, "docker export failed");
        }
    });
    Ok(stream_bounded("application/x-tar", rx))
}
