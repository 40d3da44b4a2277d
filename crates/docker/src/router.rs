//! Request dispatch: the optional `/v1.NN` prefix (checked against the versions served),
//! then one line per endpoint. Unknown paths get dockerd's 404 "page not found".

use std::sync::Arc;

use http::{Method, Request};
use hyper::body::Incoming;

use crate::error::ApiError;
use crate::http::{Reply, error};
use crate::query::Query;
use crate::{
    API_VERSION, ApiVersion, DockerApi, MIN_API_VERSION, auth, build, containers, df, events, exec,
    images, networks, system, volumes,
};

/// The largest request body read (a container's create request is a few KiB).
const MAX_BODY: usize = 4 << 20;

/// What a handler gets: the decoded path (version prefix removed) and the query.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: Query,
    pub headers: http::HeaderMap,
    /// The connection's upgrade, for the hijacked endpoints (attach, exec start).
    pub upgrade: std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

impl Call {
    /// The upgrade when the client asked for one (`Upgrade: tcp`); taken once.
    pub fn take_upgrade(&self) -> Option<hyper::upgrade::OnUpgrade> {
        if !crate::hijack::wants_upgrade(&self.headers) {
            return None;
        }
        self.upgrade.lock().ok().and_then(|mut u| u.take())
    }
}

pub async fn handle(req: Request<Incoming>, api: Arc<DockerApi>) -> Reply {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let mut resp = match prepare(&parts, upgrade) {
        Ok(call) => match route(call, body, &api).await {
            Ok(r) => r,
            Err(e) => error(&e),
        },
        Err(e) => error(&e),
    };
    system::add_server_headers(&api.engine, resp.headers_mut());
    tracing::debug!(%method, path = %raw_path, status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "docker api");
    resp
}

fn prepare(
    req: &http::request::Parts,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Call, ApiError> {
    let path = percent_decode(req.uri.path())?;
    // Every version served (1.24..=1.41) gets the same answers: the fields later versions
    // dropped are still sent, and older clients ignore what they do not know.
    let (_version, path) = split_version(&path)?;
    Ok(Call {
        method: req.method.clone(),
        path: path.to_string(),
        query: Query::parse(req.uri.query()),
        headers: req.headers.clone(),
        upgrade: std::sync::Mutex::new(upgrade),
    })
}

/// The request body, up to [`MAX_BODY`].
async fn read_body(body: Incoming) -> Result<bytes::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    http_body_util::BodyExt::collect(limited)
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

async fn route(call: Call, body: Incoming, api: &Arc<DockerApi>) -> Result<Reply, ApiError> {
    let m = &call.method;
    let p = call.path.as_str();
    match (m.as_str(), p) {
        ("GET" | "HEAD", "/_ping") => Ok(system::ping(m)),
        ("GET", "/version") => Ok(system::version(api)),
        ("GET", "/info") => Ok(system::info(api)),
        ("GET", "/events") => events::route::events(&call, api),
        ("GET", "/system/df") => df::df(api).await,
        ("POST", "/build/prune") => Ok(df::build_prune()),
        ("POST", "/auth") => {
            let body = read_body(body).await?;
            auth::login(api, &body).await
        }
        ("POST", "/build") => build::route::build(&call, api, body).await,
        ("POST", "/containers/prune") => containers::prune::prune(&call, api).await,
        ("POST", "/images/create") if call.query.get("fromSrc").is_some() => {
            images::archive::import(&call, api, body).await
        }
        ("POST", "/images/create") => images::pull::create(&call, api).await,
        ("GET", "/images/get") => {
            let names = call.query.all("names").into_iter().map(String::from);
            images::archive::save(api, names.collect()).await
        }
        ("POST", "/images/load") => images::archive::load(api, body).await,
        ("POST", "/commit") => images::commit::commit(&call, api).await,
        ("GET", "/images/json") => images::list::list(&call, api),
        ("GET", "/images/search") => Err(images::tag::search()),
        ("POST", "/images/prune") => images::remove::prune(&call, api).await,
        ("POST", "/containers/create") => {
            let body = read_body(body).await?;
            containers::create::create(&call, api, &body).await
        }
        ("GET", "/containers/json") => containers::list::list(&call, api).await,
        ("GET", "/volumes") => volumes::routes::list(&call, api).await,
        ("POST", "/volumes/create") => {
            let body = read_body(body).await?;
            volumes::routes::create(api, &body).await
        }
        ("POST", "/volumes/prune") => volumes::routes::prune(&call, api).await,
        ("GET", _) if p.starts_with("/volumes/") => {
            volumes::routes::inspect(api, &p["/volumes/".len()..]).await
        }
        ("DELETE", _) if p.starts_with("/volumes/") => {
            volumes::routes::remove(&call, api, &p["/volumes/".len()..]).await
        }
        ("GET", "/networks") => networks::list::list(&call, api),
        ("POST", "/networks/create") => {
            let body = read_body(body).await?;
            networks::create::create(api, &body).await
        }
        ("POST", "/networks/prune") => networks::remove::prune(&call, api).await,
        _ if p.starts_with("/networks/") => network_route(&call, api, body).await,
        _ if p.starts_with("/exec/") => exec_route(&call, api, body).await,
        _ if p.starts_with("/containers/") => container_route(&call, api, body).await,
        _ => match p.strip_prefix("/images/").map(split_image_action) {
            Some((name, "json")) if m == Method::GET => images::inspect::inspect(&call, api, name),
            Some((name, "history")) if m == Method::GET => {
                images::inspect::history(api, name).await
            }
            Some((name, "tag")) if m == Method::POST => images::tag::tag(&call, api, name).await,
            Some((name, "get")) if m == Method::GET => {
                images::archive::save(api, vec![name.to_string()]).await
            }
            Some((name, "push")) if m == Method::POST => images::push::push(&call, api, name).await,
            Some((name, "")) if m == Method::DELETE => {
                images::remove::delete(&call, api, name).await
            }
            _ => Err(ApiError::not_found("page not found")),
        },
    }
}

/// `/containers/{id}[/action]`.
async fn container_route(
    call: &Call,
    api: &Arc<DockerApi>,
    body: Incoming,
) -> Result<Reply, ApiError> {
    let rest = call.path.trim_start_matches("/containers/");
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    match (call.method.as_str(), action) {
        ("POST", "start") => containers::lifecycle::start(api, id).await,
        ("POST", "stop") => containers::lifecycle::stop(call, api, id).await,
        ("DELETE", "") => containers::lifecycle::delete(call, api, id).await,
        ("GET", "json") => containers::inspect::inspect(api, id).await,
        ("GET", "logs") => containers::logs::logs(call, api, id).await,
        ("POST", "wait") => containers::control::wait(call, api, id).await,
        ("POST", "kill") => containers::control::kill(call, api, id).await,
        ("POST", "restart") => containers::control::restart(call, api, id).await,
        ("POST", "pause") => containers::control::pause(api, id, true).await,
        ("POST", "unpause") => containers::control::pause(api, id, false).await,
        ("POST", "rename") => containers::control::rename(call, api, id).await,
        ("POST", "attach") => containers::attach::attach(call, api, id).await,
        ("GET", "changes") => containers::filesystem::changes(api, id).await,
        ("GET", "export") => containers::filesystem::export(api, id).await,
        ("POST", "resize") => containers::attach::resize(call, api, id).await,
        ("GET", "top") => containers::top::top(call, api, id).await,
        ("HEAD", "archive") => containers::archive::head(call, api, id).await,
        ("GET", "archive") => containers::archive::get(call, api, id).await,
        ("PUT", "archive") => containers::archive::put(call, api, id, body).await,
        ("GET", "stats") => containers::stats::stats(call, api, id).await,
        ("POST", "exec") => {
            let body = read_body(body).await?;
            exec::create(call, api, id, &body).await
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}

/// `/networks/{id}[/action]`.
async fn network_route(call: &Call, api: &DockerApi, body: Incoming) -> Result<Reply, ApiError> {
    let rest = call.path.trim_start_matches("/networks/");
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    match (call.method.as_str(), action) {
        ("GET", "") => networks::inspect::inspect(api, id),
        ("DELETE", "") => networks::remove::delete(api, id).await,
        ("POST", "connect") => {
            let body = read_body(body).await?;
            networks::connect::connect(api, id, &body).await
        }
        ("POST", "disconnect") => {
            let body = read_body(body).await?;
            networks::connect::disconnect(api, id, &body).await
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}

/// `/exec/{id}/action`.
async fn exec_route(call: &Call, api: &DockerApi, body: Incoming) -> Result<Reply, ApiError> {
    let rest = call.path.trim_start_matches("/exec/");
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    match (call.method.as_str(), action) {
        ("POST", "start") => {
            let body = read_body(body).await?;
            exec::start(call, api, id, &body).await
        }
        ("POST", "resize") => exec::resize(call, api, id).await,
        ("GET", "json") => exec::inspect(api, id),
        _ => Err(ApiError::not_found("page not found")),
    }
}

/// `busybox:latest/json` → (`busybox:latest`, `json`); a name alone (DELETE) → (name, "").
/// Names contain `/`, so the action is the last component when it is one we serve.
fn split_image_action(rest: &str) -> (&str, &str) {
    match rest.rsplit_once('/') {
        Some((name, action @ ("json" | "history" | "tag" | "get" | "push")))
            if !name.is_empty() =>
        {
            (name, action)
        }
        _ => (rest, ""),
    }
}

/// Splits `/v1.41/x` into (1.41, `/x`); unversioned paths get [`API_VERSION`].
fn split_version(path: &str) -> Result<(ApiVersion, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((API_VERSION, path));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parsed = ver.split_once('.').and_then(|(a, b)| {
        let ok = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        (ok(a) && ok(b)).then(|| Some(ApiVersion(a.parse().ok()?, b.parse().ok()?)))?
    });
    let Some(v) = parsed else {
        // Not a version prefix (e.g. a path that starts with "/v"): route it as it is.
        return Ok((API_VERSION, path));
    };
    if v > API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if v < MIN_API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok((v, tail))
}

fn percent_decode(path: &str) -> Result<String, ApiError> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("malformed escape in path {path:?}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request(format!("path {path:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            split_version("/v1.41/info").unwrap(),
            (ApiVersion(1, 41), "/info")
        );
        assert_eq!(
            split_version("/v1.24/_ping").unwrap(),
            (ApiVersion(1, 24), "/_ping")
        );
        assert_eq!(split_version("/info").unwrap(), (API_VERSION, "/info"));
        let e = split_version("/v1.50/info").unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "client version 1.50 is too new. Maximum supported API version is 1.41"
        );
        let e = split_version("/v1.12/info").unwrap_err();
        assert!(
            e.message.starts_with("client version 1.12 is too old"),
            "{}",
            e.message
        );
        assert_eq!(
            split_version("/version").unwrap(),
            (API_VERSION, "/version")
        );
    }

    #[test]
    fn image_paths() {
        assert_eq!(split_image_action("busybox/json"), ("busybox", "json"));
        assert_eq!(
            split_image_action("127.0.0.1:5000/a/b:1/history"),
            ("127.0.0.1:5000/a/b:1", "history")
        );
        assert_eq!(
            split_image_action("127.0.0.1:5000/a/b:1"),
            ("127.0.0.1:5000/a/b:1", "")
        );
        assert_eq!(
            percent_decode("/images/a%2Fb%3A1").unwrap(),
            "/images/a/b:1"
        );
        assert!(percent_decode("/x%zz").is_err());
    }
}
