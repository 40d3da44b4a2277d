//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=`. HEAD and GET carry
//! the path's stat in `X-Docker-Container-Path-Stat` (base64 JSON); GET streams a tar of
//! the path, PUT unpacks a tar into an existing directory. The node side (the
//! [`ContainerFiles`](berth_core::files::ContainerFiles) port) keeps every path inside the
//! container's root filesystem and mounts; this side streams, with backpressure both ways
//! so a large copy never sits in memory.

use std::io::{Read, Write};
use std::sync::Arc;

use base64::Engine as _;
use berth_core::container::record::ContainerRecord;
use berth_core::files::{ExtractOptions, FilesError, FsView, PathStat};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::mpsc;

use super::{find, rfc3339};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, no_content, stream_bounded};
use crate::router::Call;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";
/// Chunks in flight each way.
const DEPTH: usize = 16;

/// The container's files on the node: its rootfs, the pod's files (hostname, hosts,
/// resolv.conf) and its own mounts, which win over the pod's for the same path.
fn view(api: &DockerApi, rec: &ContainerRecord) -> FsView {
    let pod_dir = api.runtime.pods.pod_dir(&rec.pod_id);
    let pod_files = ["hostname", "hosts", "resolv.conf"]
        .into_iter()
        .map(|f| (format!("/etc/{f}"), pod_dir.join(f), false));
    let own = rec.config.mounts.iter().map(|m| {
        (
            m.container_path.clone(),
            m.host_path.clone().into(),
            m.readonly,
        )
    });
    FsView {
        rootfs: rec.bundle.join("rootfs"),
        mounts: pod_files.chain(own).collect(),
    }
}

fn path_of(call: &Call) -> Result<String, ApiError> {
    call.query
        .non_empty("path")
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("path is required: the path in the container"))
}

/// `container` as the client named it, as in dockerd's message.
fn from_files(e: FilesError, container: &str) -> ApiError {
    match e {
        FilesError::NotFound(p) => ApiError::not_found(format!(
            "Could not find the file {p} in container {container}"
        )),
        FilesError::InvalidArgument(m) => ApiError::bad_request(m),
        FilesError::Failed(m) => ApiError::internal(m),
    }
}

fn stat_header(stat: &PathStat) -> Result<HeaderValue, ApiError> {
    let body = json!({
        "name": stat.name,
        "size": stat.size,
        "mode": stat.mode,
        "mtime": rfc3339(stat.mtime_ns),
        "linkTarget": stat.link_target,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    HeaderValue::from_str(&encoded).map_err(|e| ApiError::internal(format!("stat header: {e}")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the copy task failed: {e}")))?
}

pub async fn head(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find(api, key)?;
    let path = path_of(call)?;
    let files = api.files.clone();
    let id = key.to_string();
    let v = view(api, &rec);
    let stat = blocking(move || files.stat(&v, &path).map_err(|e| from_files(e, &id))).await?;
    let mut resp = no_content(StatusCode::OK);
    resp.headers_mut().insert(STAT_HEADER, stat_header(&stat)?);
    Ok(resp)
}

pub async fn get(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find(api, key)?;
    let path = path_of(call)?;
    let files = api.files.clone();
    let (id, v) = (key.to_string(), view(api, &rec));
    let p = path.clone();
    let stat = blocking(move || files.stat(&v, &p).map_err(|e| from_files(e, &id))).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(DEPTH);
    let files = api.files.clone();
    let v = view(api, &rec);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx };
        if let Err(e) = files.archive(&v, &path, &mut out) {
            // The status line is sent: the client sees a short archive.
            tracing::warn!(path = %path, error = %e, "docker cp: archiving failed midway");
        }
    });
    let mut resp = stream_bounded("application/x-tar", rx);
    resp.headers_mut().insert(STAT_HEADER, stat_header(&stat)?);
    Ok(resp)
}

pub async fn put(
    call: &Call,
    api: &DockerApi,
    key: &str,
    mut body: Incoming,
) -> Result<Reply, ApiError> {
    let found = find(api, key).and_then(|rec| Ok((rec, path_of(call)?)));
    let (rec, path) = match found {
        Ok(v) => v,
        Err(e) => {
            // The client is still sending the archive: read it to the end, or it sees a
            // broken pipe instead of this answer.
            while let Some(Ok(_)) = body.frame().await {}
            return Err(e);
        }
    };
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: call.query.bool("noOverwriteDirNonDir"),
        copy_uid_gid: call.query.bool("copyUIDGID"),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(DEPTH);
    let pump = tokio::spawn(pump_body(body, tx));
    let files: Arc<dyn berth_core::files::ContainerFiles> = api.files.clone();
    let id = key.to_string();
    let v = view(api, &rec);
    let done = blocking(move || {
        let mut input = ChannelReader {
            rx,
            buf: Bytes::new(),
        };
        let res = files.extract(&v, &path, &mut input, opts);
        // Whatever is left of the body is read and dropped, so the answer can be sent.
        std::io::copy(&mut input, &mut std::io::sink()).ok();
        res.map_err(|e| from_files(e, &id))
    })
    .await;
    let body_ok = pump.await.unwrap_or(Ok(()));
    done?;
    body_ok?;
    Ok(no_content(StatusCode::OK))
}

async fn pump_body(mut body: Incoming, tx: mpsc::Sender<Bytes>) -> Result<(), ApiError> {
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
        if let Ok(data) = frame.into_data()
            && tx.send(data).await.is_err()
        {
            break;
        }
    }
    Ok(())
}

/// The blocking side of a response body: each write is a chunk, waiting while the client
/// is behind.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The blocking side of a request body.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.buf = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}
