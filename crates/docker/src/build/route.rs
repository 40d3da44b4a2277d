//! `POST /build` (`docker build` with the classic builder): the query's options, the
//! context from the body, then the build in its own task, its output streamed as dockerd's
//! JSON lines (`{"stream": …}`, `{"aux": {"ID": …}}`, `{"errorDetail": …, "error": …}`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::Reference;
use hyper::body::Incoming;
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
        tags,
        build_args: json_map("buildargs")?,
        labels,
        quiet: q.bool("q"),
        rm: q.get("rm").is_none() || q.bool("rm") || q.bool("forcerm"),
        pull: q.bool("pull"),
        target: q.non_empty("target").map(str::to_ascii_lowercase),
    })
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
