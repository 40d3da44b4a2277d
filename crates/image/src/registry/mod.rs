//! OCI distribution v2 client: manifests and blobs over HTTPS (HTTP for insecure/loopback
//! registries), bearer/basic auth, mirrors tried before the registry itself.

pub mod challenge;
pub mod credentials;
pub mod endpoint;
mod response;
mod token;
mod upload;

pub use response::{body_message, error_chain};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::Reference;
use berth_core::config::{Config, RegistryConfig};
use berth_core::image::{ImageError, RegistryAuth};
use reqwest::StatusCode;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use response::check_status;

use challenge::{Challenge, parse_challenges};
use credentials::Credentials;
use endpoint::{Endpoint, Scheme};
use token::TokenCache;

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));
/// Manifests and indexes larger than this are refused (containerd uses 4 MiB too).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Shared by all pulls: HTTP clients per registry, token cache, scheme that worked per host.
pub struct RegistryClient {
    registries: BTreeMap<String, RegistryConfig>,
    auth_file: PathBuf,
    clients: Mutex<HashMap<String, reqwest::Client>>,
    tokens: TokenCache,
    schemes: Mutex<HashMap<String, Scheme>>,
}

impl RegistryClient {
    pub fn new(cfg: &Config) -> Self {
        Self {
            registries: cfg.registries.clone(),
            auth_file: cfg.image.auth_file.clone(),
            clients: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
            schemes: Mutex::new(HashMap::new()),
        }
    }

    /// A pull's view of one repository.
    pub fn session(
        self: &Arc<Self>,
        reference: &Reference,
        auth: Option<RegistryAuth>,
    ) -> Result<Session, ImageError> {
        let registry = reference.registry().to_string();
        let endpoints = endpoint::endpoints(&registry, &self.registries)
            .map_err(|m| ImageError::InvalidArgument(format!("registry {registry}: {m}")))?;
        let (request_creds, server) = match &auth {
            Some(a) if !a.is_empty() => (
                credentials::from_request(a).map_err(|m| {
                    ImageError::InvalidArgument(format!("credentials for {registry}: {m}"))
                })?,
                credentials::normalize_key(&a.server_address),
            ),
            _ => (None, String::new()),
        };
        Ok(Session {
            client: self.clone(),
            registry,
            repo: reference.repository().to_string(),
            endpoints: Arc::new(endpoints),
            request_creds,
            request_server: server,
            push_authz: Arc::new(Mutex::new(None)),
        })
    }

    /// The HTTP client for an endpoint key, built once with that registry's TLS settings.
    fn client_for(&self, key: &str) -> Result<reqwest::Client, ImageError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let err = |message: String| ImageError::Registry {
            registry: key.to_string(),
            message,
        };
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300));
        if let Some(cfg) = self.registries.get(key) {
            if cfg.insecure {
                b = b.danger_accept_invalid_certs(true);
            }
            if !cfg.ca_file.as_os_str().is_empty() {
                let pem = std::fs::read(&cfg.ca_file)
                    .map_err(|e| err(format!("reading ca_file {}: {e}", cfg.ca_file.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    err(format!(
                        "ca_file {}: {}",
                        cfg.ca_file.display(),
                        error_chain(&e)
                    ))
                })?;
                if certs.is_empty() {
                    return Err(err(format!(
                        "ca_file {} holds no PEM certificate",
                        cfg.ca_file.display()
                    )));
                }
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
        }
        let client = b
            .build()
            .map_err(|e| err(format!("building HTTP client: {}", error_chain(&e))))?;
        clients.insert(key.to_string(), client.clone());
        Ok(client)
    }

    fn scheme_order(&self, ep: &Endpoint) -> Vec<Scheme> {
        let known = self
            .schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ep.host)
            .copied();
        let mut order = ep.schemes.clone();
        if let Some(k) = known
            && let Some(i) = order.iter().position(|s| *s == k)
        {
            order.remove(i);
            order.insert(0, k);
        }
        order
    }

    fn remember_scheme(&self, ep: &Endpoint, s: Scheme) {
        if ep.schemes.len() > 1 {
            self.schemes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ep.host.clone(), s);
        }
    }
}

/// What a request sends: bytes in memory (a manifest) or a file streamed from disk (a
/// layer), opened again for each attempt so an auth retry can resend it.
#[derive(Clone)]
pub(crate) enum Payload {
    Bytes(bytes::Bytes),
    File { path: std::path::PathBuf, len: u64 },
}

impl Payload {
    async fn body(&self) -> Result<(reqwest::Body, u64), ImageError> {
        match self {
            Payload::Bytes(b) => Ok((b.clone().into(), b.len() as u64)),
            Payload::File { path, len } => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| crate::content::io_error("reading", path, e))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
                Ok((reqwest::Body::wrap_stream(stream), *len))
            }
        }
    }
}

/// One request of a session: GET for pulls; HEAD, POST, PUT for pushes.
pub(crate) struct Request<'a> {
    pub method: reqwest::Method,
    /// A path on the endpoint, or an absolute URL (an upload location).
    pub path: &'a str,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<Payload>,
    /// Ask for push access (token scope `pull,push`).
    pub push: bool,
}

/// One pull's access to one repository through its endpoints.
#[derive(Clone)]
pub struct Session {
    client: Arc<RegistryClient>,
    registry: String,
    repo: String,
    endpoints: Arc<Vec<Endpoint>>,
    request_creds: Option<Credentials>,
    /// `server_address` of the request's credentials, normalised ("" when not given).
    request_server: String,
    /// The Authorization of this session's push requests. Pushes never use nor fill the
    /// shared token cache: a push goes with the credentials of its own request only, not
    /// with those another client's pull left in the cache.
    push_authz: Arc<Mutex<Option<String>>>,
}

impl Session {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// After endpoint `i` failed with `e`: the error when it was the last endpoint (the
    /// registry itself), else a warning and `Ok` to try the next one. Callers loop over
    /// [`Session::endpoints`]; a generic helper taking an async closure would not be `Send`.
    pub fn next_or_fail(
        &self,
        i: usize,
        ep: &Endpoint,
        e: ImageError,
        what: &str,
    ) -> Result<(), ImageError> {
        if i + 1 >= self.endpoints.len() {
            return Err(e);
        }
        tracing::warn!(endpoint = %ep.describe(), error = %e, "{what}: falling back to the next endpoint");
        Ok(())
    }

    /// Credentials for an endpoint: the request's for the registry itself (or for the
    /// mirror its `server_address` names), else the credentials file's.
    fn request_applies(&self, ep: &Endpoint) -> bool {
        !ep.mirror || self.request_server == ep.key
    }

    fn creds_for(&self, ep: &Endpoint) -> Result<Option<Credentials>, ImageError> {
        if self.request_applies(ep) && self.request_creds.is_some() {
            return Ok(self.request_creds.clone());
        }
        credentials::from_file(&self.client.auth_file, &ep.key).map_err(|message| {
            ImageError::InvalidArgument(format!("credentials for {}: {message}", ep.key))
        })
    }

    async fn send_once(
        &self,
        client: &reqwest::Client,
        ep: &Endpoint,
        req: &Request<'_>,
        authz: Option<&str>,
    ) -> Result<(reqwest::Response, String), ImageError> {
        let mut last = String::new();
        // An absolute URL (an upload location) is used as it is.
        let schemes = if req.path.starts_with("http") {
            vec![Scheme::Https]
        } else {
            self.client.scheme_order(ep)
        };
        for scheme in schemes {
            let url = if req.path.starts_with("http") {
                req.path.to_string()
            } else {
                ep.url(scheme, req.path)
            };
            let mut rb = client.request(req.method.clone(), &url);
            if let Some(a) = req.accept {
                rb = rb.header(ACCEPT, a);
            }
            if let Some(t) = req.content_type {
                rb = rb.header(CONTENT_TYPE, t);
            }
            if let Some(h) = authz {
                rb = rb.header(AUTHORIZATION, h);
            }
            if let Some(p) = &req.body {
                let (body, len) = p.body().await?;
                rb = rb
                    .header(reqwest::header::CONTENT_LENGTH, len.to_string())
                    .body(body);
            } else if req.method == reqwest::Method::POST || req.method == reqwest::Method::PUT {
                rb = rb.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            match rb.send().await {
                Ok(r) => {
                    if !req.path.starts_with("http") {
                        self.client.remember_scheme(ep, scheme);
                    }
                    return Ok((r, url));
                }
                Err(e) => {
                    tracing::debug!(%url, error = %error_chain(&e), "request failed");
                    last = format!("{} {url}: {}", req.method, error_chain(&e));
                }
            }
        }
        Err(ImageError::Registry {
            registry: ep.describe(),
            message: last,
        })
    }

    /// GET `path` on `ep`, answering auth challenges once. `what` names the object in errors.
    pub async fn get(
        &self,
        ep: &Endpoint,
        path: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, ImageError> {
        let req = Request {
            method: reqwest::Method::GET,
            path,
            accept,
            content_type: None,
            body: None,
            push: false,
        };
        let (resp, url) = self.send(ep, &req, what).await?;
        check_status(resp, &url, ep, what).await
    }

    /// Sends `req` to `ep`, answering auth challenges once; returns the response whatever
    /// its status (other than a second 401) and the URL it came from.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        req: &Request<'_>,
        what: &str,
    ) -> Result<(reqwest::Response, String), ImageError> {
        let client = self.client.client_for(&ep.key)?;
        let action = if req.push { "pull,push" } else { "pull" };
        let scope = format!("repository:{}:{action}", self.repo);
        let tkey = format!("{}{}", ep.host, ep.prefix);
        let mut authz = if req.push {
            self.push_authz
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            self.client.tokens.get(&tkey, &scope)
        };
        // A registry token from the request is sent at once; the credentials file is only
        // read when the registry asks for authentication.
        if authz.is_none()
            && self.request_applies(ep)
            && let Some(Credentials::RegistryToken(t)) = &self.request_creds
        {
            authz = Some(format!("Bearer {t}"));
        }
        let mut retried = false;
        loop {
            let (resp, url) = self.send_once(&client, ep, req, authz.as_deref()).await?;
            let status = resp.status();
            if status != StatusCode::UNAUTHORIZED {
                return Ok((resp, url));
            }
            let challenges: Vec<Challenge> = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_challenges)
                .collect();
            let msg = body_message(&resp.bytes().await.unwrap_or_default());
            if authz.is_some() && !req.push {
                self.client.tokens.forget(&tkey, &scope);
            }
            if retried {
                return Err(ImageError::Unauthorized {
                    registry: ep.describe(),
                    message: format!("{what}: {msg}"),
                });
            }
            retried = true;
            let creds = self.creds_for(ep)?;
            if let Some(Credentials::RegistryToken(t)) = &creds {
                let bearer = format!("Bearer {t}");
                if authz.as_deref() != Some(bearer.as_str()) {
                    authz = Some(bearer);
                    continue;
                }
            }
            let share = !req.push;
            let h = self
                .authorize(&client, ep, &tkey, &challenges, &scope, creds, &msg, share)
                .await?;
            if req.push {
                *self.push_authz.lock().unwrap_or_else(|p| p.into_inner()) = Some(h.clone());
            }
            authz = Some(h);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn authorize(
        &self,
        client: &reqwest::Client,
        ep: &Endpoint,
        tkey: &str,
        challenges: &[Challenge],
        scope: &str,
        creds: Option<Credentials>,
        msg: &str,
        share: bool,
    ) -> Result<String, ImageError> {
        let unauthorized = |message: String| ImageError::Unauthorized {
            registry: ep.describe(),
            message,
        };
        if let Some(Credentials::RegistryToken(_)) = creds {
            return Err(unauthorized(format!(
                "the registry token was rejected: {msg}"
            )));
        }
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let (h, ttl) =
                token::fetch_bearer(client, &ep.describe(), c, scope, creds.as_ref()).await?;
            if share {
                self.client.tokens.put(tkey, scope, h.clone(), ttl);
            }
            return Ok(h);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match creds.as_ref().and_then(Credentials::basic) {
                Some((u, p)) => {
                    let h = token::basic_header(u, p);
                    if share {
                        self.client
                            .tokens
                            .put(tkey, "", h.clone(), Duration::from_secs(3600));
                    }
                    Ok(h)
                }
                None => Err(unauthorized(format!(
                    "authentication required and no username/password is configured for {} ({msg})",
                    ep.key
                ))),
            };
        }
        Err(unauthorized(format!(
            "authentication required but the registry offers no supported scheme (WWW-Authenticate: {:?}): {msg}",
            challenges
                .iter()
                .map(|c| c.scheme.as_str())
                .collect::<Vec<_>>()
        )))
    }

    /// Fetches a manifest or index by tag or digest. Returns the raw bytes (at most
    /// [`MAX_MANIFEST_BYTES`]) and the Content-Type. The caller verifies the digest.
    pub async fn fetch_manifest(
        &self,
        ep: &Endpoint,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>), ImageError> {
        let path = format!("/v2/{}/manifests/{reference}", self.repo);
        let sep = if reference.contains(':') { '@' } else { ':' };
        let what = format!("{}/{}{sep}{reference}", self.registry, self.repo);
        let mut resp = self
            .get(ep, &path, Some(crate::manifest::ACCEPT), &what)
            .await?;
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ImageError::Registry {
            registry: ep.describe(),
            message: format!("{what}: reading manifest: {}", error_chain(&e)),
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_MANIFEST_BYTES {
                return Err(ImageError::Unsupported {
                    reference: what,
                    message: format!("manifest is larger than {MAX_MANIFEST_BYTES} bytes"),
                });
            }
        }
        Ok((body, ct))
    }

    /// Opens a blob for streaming (redirects to blob storage are followed).
    pub async fn get_blob(
        &self,
        ep: &Endpoint,
        digest: &berth_core::Digest,
    ) -> Result<reqwest::Response, ImageError> {
        let path = format!("/v2/{}/blobs/{digest}", self.repo);
        let what = format!("blob {digest} of {}/{}", self.registry, self.repo);
        self.get(ep, &path, None, &what).await
    }
}
