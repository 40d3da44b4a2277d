//! `GET /images/{name}/json` (`docker image inspect`) and `GET /images/{name}/history`.

use std::collections::HashMap;

use berth_core::image::Image;
use bollard_stubs::models::{
    DriverData, ImageConfig, ImageHistoryResponseItem, ImageInspect, ImageInspectRootFs,
};
use serde::Serialize;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::images::{self, created_text, repo_digests, repo_tags, unix_of};
use crate::router::Call;

/// API 1.41's inspect answer: bollard's (1.53) model plus the fields 1.41 clients still
/// decode, which later versions dropped.
#[derive(Serialize)]
struct Inspect {
    #[serde(flatten)]
    base: ImageInspect,
    #[serde(rename = "Parent")]
    parent: String,
    #[serde(rename = "Container")]
    container: String,
    #[serde(rename = "DockerVersion")]
    docker_version: String,
    #[serde(rename = "VirtualSize")]
    virtual_size: i64,
}

fn text_of(img: &Image, key: &str) -> Option<String> {
    img.config
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

pub fn inspect(_call: &Call, api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let img = images::find(api, name)?;
    // The image config's `config` has the field names of Docker's container config.
    let config: Option<ImageConfig> = img
        .config
        .get("config")
        .and_then(|c| serde_json::from_value(c.clone()).ok());
    let lower: Vec<String> = img
        .snapshots
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let size = img.size as i64;
    Ok(ok_json(&Inspect {
        base: ImageInspect {
            id: Some(img.id.to_string()),
            repo_tags: Some(repo_tags(&img)),
            repo_digests: Some(repo_digests(&img)),
            comment: Some(text_of(&img, "comment").unwrap_or_default()),
            created: Some(created_text(&img)),
            author: Some(text_of(&img, "author").unwrap_or_default()),
            config,
            architecture: text_of(&img, "architecture"),
            variant: text_of(&img, "variant"),
            os: text_of(&img, "os"),
            os_version: text_of(&img, "os.version"),
            size: Some(size),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data: HashMap::from([("LowerDir".to_string(), lower.join(":"))]),
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(img.diff_ids.iter().map(|d| d.to_string()).collect()),
            }),
            ..Default::default()
        },
        parent: String::new(),
        container: String::new(),
        docker_version: String::new(),
        virtual_size: size,
    }))
}

#[derive(serde::Deserialize, Default)]
struct HistoryEntry {
    #[serde(default)]
    created: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    empty_layer: bool,
}

pub async fn history(api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let img = images::find(api, name)?;
    let sizes = api.images.layer_sizes(&img.id).await?;
    let entries: Vec<HistoryEntry> = img
        .config
        .get("history")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default();
    Ok(ok_json(&history_items(&img, entries, &sizes)))
}

/// dockerd's history: the config's entries newest first, each non-empty one sized by its
/// layer; the newest carries the image id and tags, older ones `<missing>` (their
/// intermediate images do not exist locally). Without history, one entry per layer.
fn history_items(
    img: &Image,
    mut entries: Vec<HistoryEntry>,
    sizes: &[u64],
) -> Vec<ImageHistoryResponseItem> {
    if entries.is_empty() {
        entries = sizes
            .iter()
            .map(|_| HistoryEntry {
                created: created_text(img),
                ..Default::default()
            })
            .collect();
    }
    let mut layer = 0;
    let mut out: Vec<ImageHistoryResponseItem> = entries
        .iter()
        .map(|e| {
            let size = if e.empty_layer {
                0
            } else {
                let s = sizes.get(layer).copied().unwrap_or(0);
                layer += 1;
                s as i64
            };
            ImageHistoryResponseItem {
                id: "<missing>".into(),
                created: unix_of(&e.created),
                created_by: e.created_by.clone(),
                tags: Vec::new(),
                size,
                comment: e.comment.clone(),
            }
        })
        .collect();
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = img.id.to_string();
        top.tags = repo_tags(img);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::Digest;

    fn image(config: serde_json::Value) -> Image {
        Image {
            id: Digest::of(b"cfg"),
            repo_tags: vec!["docker.io/library/busybox:latest".into()],
            repo_digests: vec![],
            size: 10,
            user: String::new(),
            diff_ids: vec![Digest::of(b"a"), Digest::of(b"b")],
            snapshots: vec![],
            config,
            pinned: false,
        }
    }

    #[test]
    fn history_newest_first_with_sizes() {
        let img = image(serde_json::json!({
            "created": "2024-01-02T03:04:05Z",
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs"},
                {"created": "2024-01-01T00:00:01Z", "created_by": "ENV X=1", "empty_layer": true},
                {"created": "2024-01-02T03:04:05Z", "created_by": "RUN x", "comment": "c"}
            ]
        }));
        let entries = serde_json::from_value(img.config["history"].clone()).unwrap();
        let h = history_items(&img, entries, &[100, 7]);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].id, img.id.to_string());
        assert_eq!(h[0].tags, vec!["busybox:latest"]);
        assert_eq!((h[0].size, h[0].created_by.as_str()), (7, "RUN x"));
        assert_eq!(h[0].comment, "c");
        assert_eq!((h[1].size, h[1].id.as_str()), (0, "<missing>"));
        assert_eq!(h[2].size, 100);
        assert_eq!(h[2].created, 1_704_067_200);
    }

    #[test]
    fn history_without_entries_lists_layers() {
        let img = image(serde_json::json!({}));
        let h = history_items(&img, vec![], &[1, 2]);
        assert_eq!(h.iter().map(|x| x.size).collect::<Vec<_>>(), vec![2, 1]);
    }
}
