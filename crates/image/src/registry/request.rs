//! Sending one request of a session: the payload (bytes, or a file streamed from disk),
//! the scheme fallback on loopback registries, and the auth dance (challenge → bearer
//! token or basic header → one retry). Pulls share tokens through the client's cache;
//! pushes keep theirs to the session.

use std::time::Duration;

use berth_core::image::ImageError;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::challenge::{Challenge, parse_challenges};
use super::credentials::Credentials;
use super::endpoint::{Endpoint, Scheme};
use super::{Session, body_message, error_chain, token};

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

impl Session {
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
        let tkey = self.token_key(ep);
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
}
