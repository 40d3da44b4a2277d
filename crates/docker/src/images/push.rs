//! `POST /images/{name}/push?tag=` (`docker push`): the push runs in its own task and its
//! steps stream back as dockerd's JSON progress lines: "The push refers to repository",
//! per layer "Preparing" then "Pushed" or "Layer already exists", then "<tag>: digest: …
//! size: …" and the aux line with Tag, Digest and Size. No tag pushes every tag of the
//! repository, as dockerd 20.10 does.

use berth_core::Reference;
use berth_core::image::{PushEvent, PushProgress};
use bollard_stubs::models::ProgressDetail;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json_stream, line};
use crate::images::pull::{error_line, registry_auth};
use crate::names;
use crate::router::Call;

#[derive(Serialize, Default)]
struct Progress {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aux: Option<serde_json::Value>,
}

fn status(id: Option<String>, text: String) -> Bytes {
    line(&Progress {
        detail: id.as_ref().map(|_| ProgressDetail::default()),
        status: Some(text),
        id,
        aux: None,
    })
}

struct Lines {
    out: mpsc::UnboundedSender<Bytes>,
    tag: String,
}

impl PushProgress for Lines {
    fn event(&self, event: PushEvent) {
        let short = |d: &berth_core::Digest| Some(d.hex()[..12].to_string());
        let lines = match event {
            PushEvent::Preparing(layers) => layers
                .iter()
                .map(|d| status(short(d), "Preparing".into()))
                .collect(),
            PushEvent::LayerExists(d) => vec![status(short(&d), "Layer already exists".into())],
            PushEvent::LayerPushed(d) => vec![status(short(&d), "Pushed".into())],
            PushEvent::Pushed { digest, size } => vec![
                status(None, format!("{}: digest: {digest} size: {size}", self.tag)),
                line(&Progress {
                    detail: Some(ProgressDetail::default()),
                    aux: Some(serde_json::json!({
                        "Tag": self.tag, "Digest": digest.to_string(), "Size": size,
                    })),
                    ..Default::default()
                }),
            ],
        };
        for l in lines {
            let _ = self.out.send(l);
        }
    }
}

pub async fn push(call: &Call, api: &DockerApi, name: &str) -> Result<Reply, ApiError> {
    let repo: Reference = name
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    // A tag in the path (SDKs) counts as much as one in the query (the CLI).
    let last = name.rsplit('/').next().unwrap_or(name);
    let path_tag = last.contains(':');
    let tags: Vec<Reference> = match call.query.non_empty("tag") {
        Some(t) => vec![
            format!("{}:{t}", repo.name())
                .parse()
                .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?,
        ],
        None if path_tag => vec![repo.clone()],
        None => {
            let prefix = format!("{}:", repo.name());
            let mut all: Vec<Reference> = api
                .images
                .list()
                .iter()
                .flat_map(|i| i.repo_tags.iter())
                .filter(|t| t.starts_with(&prefix))
                .filter_map(|t| t.parse().ok())
                .collect();
            all.sort_by_key(|r| r.to_string());
            all
        }
    };
    let Some(first) = tags.first() else {
        return Err(ApiError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            names::familiar(&repo.name())
        )));
    };
    for t in &tags {
        if api.images.find(&t.to_string()).is_none() {
            return Err(ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                names::familiar_ref(t)
            )));
        }
    }
    let auth = registry_auth(&call.headers)?;
    let (out, rx) = mpsc::unbounded_channel();
    let _ = out.send(status(
        None,
        format!("The push refers to repository [{}]", first.name()),
    ));
    let store = api.images.clone();
    tokio::spawn(async move {
        for t in tags {
            let lines = Lines {
                out: out.clone(),
                tag: t.tag().unwrap_or("latest").to_string(),
            };
            if let Err(e) = store.push(&t, auth.clone(), &lines).await {
                let e = ApiError::from(e);
                let _ = out.send(error_line(&e.message));
                return;
            }
        }
    });
    Ok(json_stream(rx))
}
