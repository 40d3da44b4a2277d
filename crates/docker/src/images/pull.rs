//! `POST /images/create?fromImage=&tag=` (`docker pull`): the pull runs in its own task and
//! its steps stream back as dockerd's JSON progress lines, one object per line:
//! "Pulling from", per layer "Pulling fs layer" / "Already exists" / "Download complete" /
//! "Pull complete", then "Digest: …" and "Status: …". A failure before the first line is a
//! plain error response (status + message, as dockerd answers); after it, an error line.

use base64::Engine as _;
use berth_core::image::{Image, ImageError, PullEvent, PullProgress, RegistryAuth};
use berth_core::{Digest, Reference};
use bollard_stubs::models::{CreateImageInfo, ProgressDetail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json_stream, line};
use crate::names;
use crate::router::Call;

struct Events(mpsc::UnboundedSender<PullEvent>);

impl PullProgress for Events {
    fn event(&self, event: PullEvent) {
        // The receiver is gone only when the client left; the pull goes on regardless.
        let _ = self.0.send(event);
    }
}

pub async fn create(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let q = &call.query;
    let from = q.get("fromImage").ok_or_else(|| {
        ApiError::bad_request("fromImage is required: the image to pull, e.g. fromImage=busybox")
    })?;
    let reference = names::pull_reference(from, q.get("tag"))?;
    if let Some(p) = q.non_empty("platform") {
        let ours = format!("linux/{}", api.engine.arch);
        if p != ours {
            return Err(ApiError::bad_request(format!(
                "platform {p} is not pulled here: berth pulls {ours} (image.platform)"
            )));
        }
    }
    let auth = registry_auth(&call.headers)?;
    let before = api.images.find(&reference.to_string()).map(|i| i.id);

    let (tx, mut events) = mpsc::unbounded_channel();
    let store = api.images.clone();
    let r = reference.clone();
    let mut pull = tokio::spawn(async move {
        let progress = Events(tx);
        store.pull_with_progress(&r, auth, &progress).await
    });
    // Wait for the first step or the end, whichever comes first.
    // A pull that ends without a step (it failed early, or the store reports no steps) is
    // answered whole: a failure then gets its own status code, as from dockerd.
    let first = tokio::select! {
        biased;
        res = &mut pull => Err(res),
        ev = events.recv() => Ok(ev),
    };
    let first = match first {
        Ok(Some(ev)) => ev,
        Ok(None) => return whole(api, pull.await, &reference, before.as_ref()),
        Err(res) => return whole(api, res, &reference, before.as_ref()),
    };
    let (out, rx) = mpsc::unbounded_channel();
    let mut writer = Writer {
        out,
        reference: reference.clone(),
        manifest: None,
    };
    writer.event(first);
    let bus = api.events.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            writer.event(ev);
        }
        match joined(pull.await) {
            Ok(img) => {
                pull_event(&bus, &writer.reference);
                for l in finish_lines(
                    &writer.reference,
                    writer.manifest.as_ref(),
                    &img,
                    before.as_ref(),
                ) {
                    let _ = writer.out.send(l);
                }
            }
            Err(e) => {
                let e = ApiError::from(e);
                let _ = writer.out.send(error_line(&e.message));
            }
        }
    });
    Ok(json_stream(rx))
}

fn joined(
    res: Result<Result<Image, ImageError>, tokio::task::JoinError>,
) -> Result<Image, ImageError> {
    res.map_err(|e| ImageError::Store(format!("the pull task failed: {e}")))?
}

fn whole(
    api: &DockerApi,
    res: Result<Result<Image, ImageError>, tokio::task::JoinError>,
    reference: &Reference,
    before: Option<&Digest>,
) -> Result<Reply, ApiError> {
    let img = joined(res)?;
    pull_event(&api.events, reference);
    Ok(stream_of(finish_lines(reference, None, &img, before)))
}

fn stream_of(lines: Vec<Bytes>) -> Reply {
    let (tx, rx) = mpsc::unbounded_channel();
    for l in lines {
        let _ = tx.send(l);
    }
    json_stream(rx)
}

struct Writer {
    out: mpsc::UnboundedSender<Bytes>,
    reference: Reference,
    manifest: Option<Digest>,
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

fn status(id: Option<String>, text: &str, detail: bool) -> Bytes {
    line(&CreateImageInfo {
        id,
        status: Some(text.to_string()),
        progress_detail: detail.then(ProgressDetail::default),
        ..Default::default()
    })
}

impl Writer {
    fn event(&mut self, ev: PullEvent) {
        let lines = match ev {
            PullEvent::Resolved { manifest, layers } => {
                self.manifest = Some(manifest);
                let id = match (self.reference.tag(), self.reference.digest()) {
                    (Some(t), _) => t.to_string(),
                    (None, Some(d)) => d.to_string(),
                    (None, None) => String::new(),
                };
                let head = format!("Pulling from {}", names::path_of(&self.reference));
                std::iter::once(status(Some(id), &head, false))
                    .chain(
                        layers
                            .iter()
                            .map(|(d, _)| status(Some(short(d)), "Pulling fs layer", true)),
                    )
                    .collect()
            }
            PullEvent::LayerExists(d) => vec![status(Some(short(&d)), "Already exists", true)],
            PullEvent::LayerDownloaded(d) => {
                vec![status(Some(short(&d)), "Download complete", true)]
            }
            PullEvent::LayerReady(d) => vec![status(Some(short(&d)), "Pull complete", true)],
        };
        for l in lines {
            let _ = self.out.send(l);
        }
    }
}

/// "Digest: …" and "Status: …", as dockerd ends a pull.
fn finish_lines(
    reference: &Reference,
    manifest: Option<&Digest>,
    img: &Image,
    before: Option<&Digest>,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    let repo = reference.name();
    let digest = manifest.map(|d| d.to_string()).or_else(|| {
        img.repo_digests
            .iter()
            .find_map(|n| n.strip_prefix(&format!("{repo}@")).map(str::to_string))
    });
    if let Some(d) = digest {
        out.push(status(None, &format!("Digest: {d}"), false));
    }
    let name = names::familiar_ref(reference);
    let text = if before == Some(&img.id) {
        format!("Status: Image is up to date for {name}")
    } else {
        format!("Status: Downloaded newer image for {name}")
    };
    out.push(status(None, &text, false));
    out
}

/// dockerd's `pull` event: about the reference pulled, by name.
fn pull_event(bus: &crate::events::EventBus, reference: &Reference) {
    let name = names::familiar_ref(reference);
    let attrs = std::collections::HashMap::from([("name".to_string(), name.clone())]);
    bus.emit(crate::events::Kind::Image, "pull", &name, attrs);
}

pub fn error_line(message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Detail<'a> {
        message: &'a str,
    }
    #[derive(Serialize)]
    struct ErrorLine<'a> {
        #[serde(rename = "errorDetail")]
        detail: Detail<'a>,
        error: &'a str,
    }
    line(&ErrorLine {
        detail: Detail { message },
        error: message,
    })
}

/// The `X-Registry-Auth` header: base64 (URL-safe, as the CLI and SDKs send it) of a
/// JSON auth config. Absent or empty → None (the store's credentials file applies).
pub fn registry_auth(headers: &http::HeaderMap) -> Result<Option<RegistryAuth>, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct AuthConfig {
        username: String,
        password: String,
        auth: String,
        serveraddress: String,
        identitytoken: String,
        registrytoken: String,
    }
    let Some(raw) = headers.get("x-registry-auth") else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Registry-Auth is not ASCII"))?
        .trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let b64 = base64::engine::general_purpose::URL_SAFE;
    let b64_np = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD;
    let bytes = b64
        .decode(raw)
        .or_else(|_| b64_np.decode(raw))
        .or_else(|_| std.decode(raw))
        .map_err(|e| ApiError::bad_request(format!("X-Registry-Auth is not base64: {e}")))?;
    let cfg: AuthConfig = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("X-Registry-Auth is not an auth config: {e}"))
    })?;
    let auth = RegistryAuth {
        username: cfg.username,
        password: cfg.password,
        auth: cfg.auth,
        server_address: cfg.serveraddress,
        identity_token: cfg.identitytoken,
        registry_token: cfg.registrytoken,
    };
    Ok((!auth.is_empty()).then_some(auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_header_forms() {
        let mut h = http::HeaderMap::new();
        assert!(registry_auth(&h).unwrap().is_none());
        h.insert("x-registry-auth", "e30=".parse().unwrap()); // {}
        assert!(registry_auth(&h).unwrap().is_none());
        let json = r#"{"username":"u","password":"p?>","serveraddress":"r:5000"}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(json);
        h.insert("x-registry-auth", enc.parse().unwrap());
        let a = registry_auth(&h).unwrap().unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p?>"));
        assert_eq!(a.server_address, "r:5000");
        h.insert("x-registry-auth", "!!".parse().unwrap());
        assert!(registry_auth(&h).is_err());
    }

    #[test]
    fn progress_lines() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let r: Reference = "127.0.0.1:5000/busybox:1".parse().unwrap();
        let mut w = Writer {
            out,
            reference: r,
            manifest: None,
        };
        let l = Digest::of(b"layer");
        w.event(PullEvent::Resolved {
            manifest: Digest::of(b"m"),
            layers: vec![(l.clone(), 5)],
        });
        w.event(PullEvent::LayerReady(l.clone()));
        let a: serde_json::Value = serde_json::from_slice(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(a["status"], "Pulling from busybox");
        assert_eq!(a["id"], "1");
        let b: serde_json::Value = serde_json::from_slice(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(b["status"], "Pulling fs layer");
        assert_eq!(b["id"], &l.hex()[..12]);
        assert_eq!(b["progressDetail"], serde_json::json!({}));
        let c: serde_json::Value = serde_json::from_slice(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(c["status"], "Pull complete");
        let e: serde_json::Value = serde_json::from_slice(&error_line("boom")).unwrap();
        assert_eq!(
            e,
            serde_json::json!({"errorDetail": {"message": "boom"}, "error": "boom"})
        );
    }
}
