//! `docker save` (`GET /images/get?names=…`, `GET /images/{name}/get`), `docker load`
//! (`POST /images/load`) and `docker import` (`POST /images/create?fromSrc=-`): image
//! tarballs streamed between the client and the image store.

use berth_core::image::ImportRequest;
use bytes::Bytes;
use hyper::body::Incoming;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json_stream, line, stream_bounded};
use crate::images::{self, commit};
use crate::names;
use crate::router::Call;
use crate::tarstream::{BodyReader, BodyWriter};

#[derive(Serialize)]
struct StreamLine<'a> {
    stream: &'a str,
}

#[derive(Serialize)]
struct StatusLine<'a> {
    status: &'a str,
}

fn lines(out: Vec<Bytes>) -> Reply {
    let (tx, rx) = mpsc::unbounded_channel();
    for l in out {
        let _ = tx.send(l);
    }
    json_stream(rx)
}

pub async fn save(api: &DockerApi, names: Vec<String>) -> Result<Reply, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "names is required: the images to save, e.g. names=busybox:latest",
        ));
    }
    // Unknown names are refused before the first byte of the archive.
    for n in &names {
        let img = images::find(api, n)?;
        images::image_event(api, "save", &img.id.to_string(), n);
    }
    let (w, rx) = BodyWriter::new();
    let store = api.images.clone();
    tokio::spawn(async move {
        if let Err(e) = store.save(names.clone(), Box::new(w)).await {
            // The archive is cut short: the client sees a truncated tar.
            tracing::warn!(images = ?names, error = %e, "docker save failed");
        }
    });
    Ok(stream_bounded("application/x-tar", rx))
}

/// `quiet` only silences dockerd's progress bars, and this answer has none: the lines
/// are the same either way.
pub async fn load(api: &DockerApi, body: Incoming) -> Result<Reply, ApiError> {
    let loaded = api.images.load(Box::new(BodyReader::new(body))).await?;
    let mut out = Vec::new();
    for img in &loaded {
        let shown = img.tags.first().map(|t| names::familiar(t));
        images::image_event(
            api,
            "load",
            &img.id.to_string(),
            &shown.unwrap_or_else(|| img.id.to_string()),
        );
    }
    for img in loaded {
        if img.tags.is_empty() {
            let text = format!("Loaded image ID: {}\n", img.id);
            out.push(line(&StreamLine { stream: &text }));
        }
        for t in &img.tags {
            let text = format!("Loaded image: {}\n", names::familiar(t));
            out.push(line(&StreamLine { stream: &text }));
        }
    }
    Ok(lines(out))
}

pub async fn import(call: &Call, api: &DockerApi, body: Incoming) -> Result<Reply, ApiError> {
    let q = &call.query;
    let src = q.get("fromSrc").unwrap_or_default();
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {src:?} is not supported: berth imports only a tarball sent with the request (docker import - or docker import FILE)"
        )));
    }
    let config = commit::import_config(&q.all("changes"))?;
    let req = ImportRequest {
        config,
        comment: q.get("message").unwrap_or_default().to_string(),
        tag: commit::target(call)?,
    };
    let img = api
        .images
        .import(req, Box::new(BodyReader::new(body)))
        .await?;
    images::image_event(api, "import", &img.id.to_string(), &img.id.to_string());
    Ok(lines(vec![line(&StatusLine {
        status: &img.id.to_string(),
    })]))
}
