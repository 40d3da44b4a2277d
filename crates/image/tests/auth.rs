//! Auth flows against an in-process fake registry (no docker-registry needed; root for unpack): bearer
//! token flow with basic credentials, token caching, plain basic auth, wrong credentials.

#![allow(clippy::unwrap_used)] // test code: a failed setup should just panic
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_core::Digest;
use berth_core::image::{ImageError, ImageStore, RegistryAuth};
use berth_image::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bearer,
    Basic,
}

struct Fake {
    mode: Mode,
    port: u16,
    blobs: HashMap<String, (Vec<u8>, &'static str)>,
    token_requests: AtomicUsize,
    last_scope: Mutex<String>,
}

const TOKEN: &str = "good-token";

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

impl Fake {
    fn respond(
        &self,
        path: &str,
        headers: &HashMap<String, String>,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let authz = headers.get("authorization").cloned().unwrap_or_default();
        let denied = |challenge: String| {
            let body =
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec();
            (401, vec![("WWW-Authenticate".to_string(), challenge)], body)
        };
        if let Some(query) = path.strip_prefix("/token?") {
            self.token_requests.fetch_add(1, Ordering::SeqCst);
            *self.last_scope.lock().unwrap() = query.to_string();
            if authz != basic("alice", "wonderland") {
                let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials for alice"}]}"#;
                return (401, vec![], body.to_vec());
            }
            return (
                200,
                vec![],
                format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#).into_bytes(),
            );
        }
        let ok = match self.mode {
            Mode::Bearer => authz == format!("Bearer {TOKEN}"),
            Mode::Basic => authz == basic("alice", "wonderland"),
        };
        if !ok {
            return denied(match self.mode {
                Mode::Bearer => format!(
                    r#"Bearer realm="http://127.0.0.1:{}/token",service="fake, registry",scope="repository:app:pull""#,
                    self.port
                ),
                Mode::Basic => r#"Basic realm="fake""#.to_string(),
            });
        }
        let key = path.rsplit('/').next().unwrap_or("");
        match self.blobs.get(key) {
            Some((data, ct)) => (
                200,
                vec![("Content-Type".into(), ct.to_string())],
                data.clone(),
            ),
            None => (
                404,
                vec![],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                    .to_vec(),
            ),
        }
    }
}

async fn serve(fake: Arc<Fake>, listener: TcpListener) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = sock.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                // A TLS ClientHello (the client tries https first on loopback): hang up.
                if buf.is_empty() && chunk[0] == 0x16 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            let mut lines = text.split("\r\n");
            let path = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("")
                .to_string();
            let headers: HashMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let (status, hdrs, body) = fake.respond(&path, &headers);
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in hdrs {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.write_all(&body).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Starts a fake registry holding `app:v1` (one layer).
async fn start(mode: Mode) -> (Arc<Fake>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let layer = common::layer(&[("hello", b"hi")]);
    let config = serde_json::to_vec(&serde_json::json!({
        "config": {"User": "42"}, "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": layer.digest.to_string(), "size": layer.blob.len()}],
    }))
    .unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(
        Digest::of(&config).to_string(),
        (config, "application/octet-stream"),
    );
    blobs.insert(
        layer.digest.to_string(),
        (layer.blob.clone(), "application/octet-stream"),
    );
    blobs.insert(
        "v1".to_string(),
        (
            manifest,
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    );
    let fake = Arc::new(Fake {
        mode,
        port,
        blobs,
        token_requests: AtomicUsize::new(0),
        last_scope: Mutex::new(String::new()),
    });
    tokio::spawn(serve(fake.clone(), listener));
    (fake, format!("127.0.0.1:{port}"))
}

fn creds(user: &str, pass: &str) -> Option<RegistryAuth> {
    Some(RegistryAuth {
        username: user.into(),
        password: pass.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn bearer_token_flow_with_request_credentials_and_cache() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: unpacking layers with their owners needs root");
        return;
    }
    let (fake, host) = start(Mode::Bearer).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&common::config(tmp.path(), vec![]))
        .await
        .unwrap();
    let reference = format!("{host}/app:v1").parse().unwrap();

    let e = store.pull(&reference, None).await.unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");
    let e = store
        .pull(&reference, creds("alice", "nope"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains(&host) && text.contains("bad credentials for alice"),
        "{text}"
    );

    let img = store
        .pull(&reference, creds("alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(img.user, "42");
    let scope = fake.last_scope.lock().unwrap().clone();
    assert!(
        scope.contains("service=fake%2C+registry") || scope.contains("service=fake%2C%20registry"),
        "{scope}"
    );
    assert!(scope.contains("scope=repository%3Aapp%3Apull"), "{scope}");
    // The token is cached: a second resolve of the tag asks the token endpoint nothing.
    let before = fake.token_requests.load(Ordering::SeqCst);
    store
        .pull(&reference, creds("alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn basic_auth_from_the_credentials_file() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: unpacking layers with their owners needs root");
        return;
    }
    let (_fake, host) = start(Mode::Basic).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(tmp.path(), vec![]);
    let auth_file = tmp.path().join("config.json");
    cfg.image.auth_file = auth_file.clone();
    let store = Store::open(&cfg).await.unwrap();
    let reference = format!("{host}/app:v1").parse().unwrap();

    // No file: anonymous, refused with a clear message.
    let e = store.pull(&reference, None).await.unwrap_err();
    assert!(e.to_string().contains("no username/password"), "{e}");
    // Malformed file: a clear error, not anonymous.
    std::fs::write(&auth_file, "{oops").unwrap();
    let e = store.pull(&reference, None).await.unwrap_err();
    assert!(e.to_string().contains("malformed"), "{e}");
    let entry = base64::engine::general_purpose::STANDARD.encode("alice:wonderland");
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths":{{"http://{host}":{{"auth":"{entry}"}}}}}}"#),
    )
    .unwrap();
    let img = store.pull(&reference, None).await.unwrap();
    assert_eq!(img.repo_tags, vec![format!("{host}/app:v1")]);
}
