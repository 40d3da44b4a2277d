//! `docker login`: the registry's `/v2/` ping with the given credentials, as dockerd checks
//! them: no challenge means no authentication is needed; a basic challenge is answered
//! with the credentials; a bearer challenge exchanges them at the token endpoint (no
//! scope), and the token must then open `/v2/`.

use berth_core::image::{ImageError, RegistryAuth};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use super::RegistryClient;
use super::challenge::{Challenge, parse_challenges};
use super::credentials::{self, Credentials};
use super::endpoint::{self, Endpoint};
use super::response::{body_message, error_chain};
use super::token;

impl RegistryClient {
    /// Checks `auth` against its `server_address` registry (the registry itself, never a
    /// mirror). Ok when the registry accepts them (or asks for none).
    pub async fn login(&self, auth: &RegistryAuth) -> Result<(), ImageError> {
        let registry = credentials::normalize_key(&auth.server_address);
        if registry.is_empty() {
            return Err(ImageError::InvalidArgument(
                "login: the server address is empty".into(),
            ));
        }
        let creds = credentials::from_request(auth)
            .map_err(|m| ImageError::InvalidArgument(format!("credentials for {registry}: {m}")))?;
        let ep = endpoint::upstream(&registry, &self.registries);
        let client = self.client_for(&ep.key)?;
        let unauthorized = |message: String| ImageError::Unauthorized {
            registry: ep.describe(),
            message,
        };
        let (status, challenges, msg) = self.ping(&client, &ep, None).await?;
        if status != StatusCode::UNAUTHORIZED {
            return ok_or_registry(status, &ep, &msg);
        }
        let header = if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            token::fetch_bearer(&client, &ep.describe(), c, "", creds.as_ref())
                .await
                .map_err(|e| match e {
                    ImageError::Registry { message, .. } => unauthorized(message),
                    other => other,
                })?
                .0
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            let (u, p) = creds.as_ref().and_then(Credentials::basic).ok_or_else(|| {
                unauthorized(format!("a username and password are needed: {msg}"))
            })?;
            token::basic_header(u, p)
        } else {
            return Err(unauthorized(format!(
                "the registry offers no supported authentication scheme: {msg}"
            )));
        };
        let (status, _, msg) = self.ping(&client, &ep, Some(&header)).await?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(unauthorized(msg));
        }
        ok_or_registry(status, &ep, &msg)
    }

    /// GET /v2/ through the schemes the registry allows: the status, the challenges and
    /// the body's message.
    async fn ping(
        &self,
        client: &reqwest::Client,
        ep: &Endpoint,
        authz: Option<&str>,
    ) -> Result<(StatusCode, Vec<Challenge>, String), ImageError> {
        let mut last = String::new();
        for scheme in self.scheme_order(ep) {
            let url = ep.url(scheme, "/v2/");
            let mut rb = client.get(&url);
            if let Some(h) = authz {
                rb = rb.header(AUTHORIZATION, h);
            }
            match rb.send().await {
                Ok(resp) => {
                    self.remember_scheme(ep, scheme);
                    let status = resp.status();
                    let challenges = resp
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(parse_challenges)
                        .collect();
                    let msg = body_message(&resp.bytes().await.unwrap_or_default());
                    return Ok((status, challenges, msg));
                }
                Err(e) => last = format!("GET {url}: {}", error_chain(&e)),
            }
        }
        Err(ImageError::Registry {
            registry: ep.describe(),
            message: last,
        })
    }
}

fn ok_or_registry(status: StatusCode, ep: &Endpoint, msg: &str) -> Result<(), ImageError> {
    if status.is_success() {
        return Ok(());
    }
    Err(ImageError::Registry {
        registry: ep.describe(),
        message: format!("GET /v2/: {status}: {msg}"),
    })
}
