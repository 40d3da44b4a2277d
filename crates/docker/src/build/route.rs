//! `POST /build` (`docker build` with the classic builder): the query's options, the
//! context from the body, then the build in its own task, its output streamed as dockerd's
//! JSON lines (`{"stream": …}`, `{"aux": {"ID": …}}`, `{"errorDetail": …, "error": …}`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::Reference;
use berth_core::image::RegistryAuth;
use bollard_stubs::models::HostConfig;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::context;
use super::steps::{Builder, Options, Out, short};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json_stream};
use crate::router::Call;
use crate::tarstream::BodyReader;
use crate::{images, names};

fn options(call: &Call, api: &DockerApi) -> Result<Options, ApiError> {
    let q = &call.query;
    if let Some(r) = q.non_empty("remote") {
        return Err(ApiError::bad_request(format!(
            "remote={r}: berth builds from the context in the request only (no git or URL contexts)"
        )));
    }
    if let Some(p) = q.non_empty("platform") {
        let ours = format!("linux/{}", api.engine.arch);
        if p != ours {
            return Err(ApiError::bad_request(format!(
                "platform {p}: berth builds for its own platform only ({ours})"
            )));
        }
    }
    let tags = q
        .all("t")
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let r: Reference = t
                .parse()
                .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
            if r.digest().is_some() {
                return Err(ApiError::bad_request(format!(
                    "invalid tag {t:?}: a build tags, it cannot name a digest"
                )));
            }
            Ok(r)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let json_map = |key: &str| -> Result<BTreeMap<String, Option<String>>, ApiError> {
        match q.non_empty(key) {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("{key} is not a JSON object of strings: {e}"))
            }),
        }
    };
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    Ok(Options {
        host: step_host_config(call)?,
        auths: registry_config(&call.headers)?,
        tags,
        build_args: json_map("buildargs")?,
        labels,
        quiet: q.bool("q"),
        rm: q.get("rm").is_none() || q.bool("rm") || q.bool("forcerm"),
        pull: q.bool("pull"),
        target: q.non_empty("target").map(str::to_ascii_lowercase),
    })
}

/// The RUN containers' network and limits (`--network`, `--memory`, `--cpu-*`); the
/// options berth's containers cannot take are refused when set.
fn step_host_config(call: &Call) -> Result<HostConfig, ApiError> {
    let q = &call.query;
    let number = |key: &str| -> Result<Option<i64>, ApiError> {
        match q.non_empty(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(|n| (n != 0).then_some(n))
                .map_err(|_| ApiError::bad_request(format!("{key}={v} is not a number"))),
        }
    };
    for key in ["cpusetcpus", "cpusetmems", "extrahosts", "isolation"] {
        if let Some(v) = q.non_empty(key) {
            return Err(ApiError::bad_request(format!(
                "{key}={v}: not supported by berth's builder"
            )));
        }
    }
    for key in ["shmsize", "memswap"] {
        if number(key)?.is_some_and(|n| n > 0) {
            return Err(ApiError::bad_request(format!(
                "{key}: not supported by berth's builder"
            )));
        }
    }
    if q.bool("squash") {
        return Err(ApiError::bad_request(
            "--squash is an experimental dockerd feature that berth does not have",
        ));
    }
    Ok(HostConfig {
        network_mode: q
            .non_empty("networkmode")
            .filter(|m| *m != "default")
            .map(String::from),
        memory: number("memory")?,
        cpu_shares: number("cpushares")?,
        cpu_quota: number("cpuquota")?,
        cpu_period: number("cpuperiod")?,
        ..Default::default()
    })
}

/// `X-Registry-Config`: the CLI's credentials for every registry it knows (base64 JSON
/// `{server: AuthConfig}`), for the pulls of FROM; keyed by registry host (`docker.io` for
/// Docker Hub's addresses).
fn registry_config(headers: &http::HeaderMap) -> Result<BTreeMap<String, RegistryAuth>, ApiError> {
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
    let Some(raw) = headers.get("x-registry-config") else {
        return Ok(BTreeMap::new());
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Registry-Config is not ASCII"))?
        .trim();
    if raw.is_empty() {
        return Ok(BTreeMap::new());
    }
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = URL_SAFE
        .decode(raw)
        .or_else(|_| URL_SAFE_NO_PAD.decode(raw))
        .or_else(|_| STANDARD.decode(raw))
        .map_err(|e| ApiError::bad_request(format!("X-Registry-Config is not base64: {e}")))?;
    let map: BTreeMap<String, AuthConfig> = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "X-Registry-Config is not a map of auth configs: {e}"
        ))
    })?;
    Ok(map
        .into_iter()
        .map(|(server, c)| {
            let auth = RegistryAuth {
                username: c.username,
                password: c.password,
                auth: c.auth,
                server_address: if c.serveraddress.is_empty() {
                    server.clone()
                } else {
                    c.serveraddress
                },
                identity_token: c.identitytoken,
                registry_token: c.registrytoken,
            };
            (registry_host(&server), auth)
        })
        .filter(|(_, a)| !a.is_empty())
        .collect())
}

/// A CLI config key (`https://index.docker.io/v1/`, `h:5000`) as the registry host of a
/// reference.
pub fn registry_host(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    match k.split('/').next().unwrap_or("") {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_ascii_lowercase(),
    }
}

/// Tells the builds' directories apart.
static BUILDS: AtomicU64 = AtomicU64::new(0);

pub async fn build(call: &Call, api: &Arc<DockerApi>, body: Incoming) -> Result<Reply, ApiError> {
    let opts = options(call, api)?;
    let dockerfile = call
        .query
        .non_empty("dockerfile")
        .unwrap_or("Dockerfile")
        .to_string();
    let dir = std::path::PathBuf::from(&api.engine.root_dir)
        .join("build")
        .join(format!(
            "{}-{}",
            berth_engine::containers::lifecycle::now_ns(),
            BUILDS.fetch_add(1, Ordering::Relaxed)
        ));
    let input = BodyReader::new(body);
    let ctx = tokio::task::spawn_blocking(move || context::receive(input, dir))
        .await
        .map_err(|e| ApiError::internal(format!("receiving the build context: {e}")))??;
    let text = ctx.dockerfile(&dockerfile)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let out = Out::new(tx, opts.quiet);
    let api = api.clone();
    tokio::spawn(async move {
        let mut b = Builder::new(api.clone(), ctx, out, opts);
        match b.build(&text).await {
            Ok(id) => finish(&api, &b, &id).await,
            Err(e) => b.out.error(&e.message),
        }
    });
    Ok(json_stream(rx))
}

/// Tags the result and says so.
async fn finish(api: &DockerApi, b: &Builder, id: &berth_core::Digest) {
    b.out.aux_id(id);
    b.out
        .say(format!("Successfully built {}\n", short(&id.to_string())));
    for t in &b.opts.tags {
        if let Err(e) = api.images.tag(&id.to_string(), t).await {
            b.out.error(&ApiError::from(e).message);
            return;
        }
        let name = names::familiar(&t.to_string());
        images::image_event(api, "tag", &id.to_string(), &name);
        b.out.say(format!("Successfully tagged {name}\n"));
    }
    if b.opts.quiet {
        b.out.always(format!("{id}\n"));
    }
}
