//! OCI distribution v2 client: manifests and blobs over HTTPS (HTTP for insecure/loopback
//! registries), pulled and pushed, bearer/basic auth, mirrors tried before the registry itself.

pub mod challenge;
pub mod credentials;
pub mod endpoint;
mod login;
mod request;
mod response;
mod token;
mod upload;

pub(crate) use request::{Payload, Request};
pub use response::{body_message, error_chain};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::Reference;
use berth_core::config::{Config, RegistryConfig};
use berth_core::image::{ImageError, RegistryAuth};

use reqwest::header::CONTENT_TYPE;
use response::check_status;

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

    /// Where the shared token cache files `ep`'s headers: per endpoint and per whose
    /// credentials earned them. A request's own credentials get a cache of their own (by
    /// fingerprint), so an anonymous request never rides on what another client's
    /// credentials opened; requests without credentials share the node's (the credentials
    /// file is the node's, as for the kubelet's pulls).
    fn token_key(&self, ep: &Endpoint) -> String {
        let whose = match &self.request_creds {
            Some(c) if self.request_applies(ep) => c.fingerprint(),
            _ => "node".to_string(),
        };
        format!("{}{}|{whose}", ep.host, ep.prefix)
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
