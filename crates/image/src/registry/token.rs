//! Bearer tokens: the token-endpoint flow of the distribution spec (GET with basic auth, or
//! the OAuth2 refresh-token POST), and a cache per (endpoint, scope) until expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_core::image::ImageError;
use serde::Deserialize;

use super::challenge::Challenge;
use super::credentials::Credentials;
use super::error_chain;

/// Tokens without `expires_in` live 60 s (distribution spec default).
const DEFAULT_TTL: u64 = 60;
/// Stop using a token a little before it expires, so it is not rejected in flight.
const MARGIN: Duration = Duration::from_secs(10);

/// `Authorization` header values per (endpoint key, scope). A basic header is stored under
/// the scope `""` since it holds for every repository.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl TokenCache {
    pub fn get(&self, endpoint: &str, scope: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        [scope, ""].iter().find_map(|s| {
            map.get(&(endpoint.to_string(), s.to_string()))
                .filter(|(_, until)| *until > now)
                .map(|(h, _)| h.clone())
        })
    }

    pub fn put(&self, endpoint: &str, scope: &str, header: String, ttl: Duration) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + ttl.saturating_sub(MARGIN).max(Duration::from_secs(1));
        map.insert((endpoint.to_string(), scope.to_string()), (header, until));
    }

    pub fn forget(&self, endpoint: &str, scope: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(endpoint.to_string(), scope.to_string()));
        map.remove(&(endpoint.to_string(), String::new()));
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

pub fn basic_header(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Runs the token flow for a bearer challenge. Returns the header value and its lifetime.
pub async fn fetch_bearer(
    client: &reqwest::Client,
    registry: &str,
    challenge: &Challenge,
    scope: &str,
    creds: Option<&Credentials>,
) -> Result<(String, Duration), ImageError> {
    let registry_err = |message: String| ImageError::Registry {
        registry: registry.to_string(),
        message,
    };
    let realm = challenge
        .param("realm")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| registry_err("bearer challenge without a realm".into()))?;
    let service = challenge.param("service").unwrap_or("");
    // The registry's own scope wins: it may ask for more than we would (e.g. mounts).
    let scope = challenge
        .param("scope")
        .filter(|s| !s.is_empty())
        .unwrap_or(scope);
    let request = match creds {
        Some(Credentials::IdentityToken { token, .. }) => {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("service", service),
                ("scope", scope),
                ("client_id", "berth"),
            ];
            client.post(realm).form(&form)
        }
        _ => {
            let mut q: Vec<(&str, &str)> = Vec::new();
            if !service.is_empty() {
                q.push(("service", service));
            }
            q.push(("scope", scope));
            let mut r = client.get(realm).query(&q);
            if let Some((u, p)) = creds.and_then(Credentials::basic) {
                r = r.header(reqwest::header::AUTHORIZATION, basic_header(u, p));
            }
            r
        }
    };
    let resp = request
        .send()
        .await
        .map_err(|e| registry_err(format!("token endpoint {realm}: {}", error_chain(&e))))?;
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ImageError::Unauthorized {
            registry: registry.to_string(),
            message: format!(
                "token endpoint {realm} answered {status}: {}",
                super::body_message(&body)
            ),
        });
    }
    if !status.is_success() {
        return Err(registry_err(format!(
            "token endpoint {realm} answered {status}: {}",
            super::body_message(&body)
        )));
    }
    let t: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| registry_err(format!("token endpoint {realm}: malformed answer: {e}")))?;
    let token = if t.access_token.is_empty() {
        t.token
    } else {
        t.access_token
    };
    if token.is_empty() {
        return Err(registry_err(format!(
            "token endpoint {realm} returned no token"
        )));
    }
    let ttl = Duration::from_secs(t.expires_in.unwrap_or(DEFAULT_TTL).max(DEFAULT_TTL));
    Ok((format!("Bearer {token}"), ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_by_scope_and_basic_fallback() {
        let c = TokenCache::default();
        c.put(
            "reg",
            "repository:a:pull",
            "Bearer x".into(),
            Duration::from_secs(300),
        );
        assert_eq!(
            c.get("reg", "repository:a:pull").as_deref(),
            Some("Bearer x")
        );
        assert_eq!(c.get("reg", "repository:b:pull"), None);
        c.put("reg", "", basic_header("u", "p"), Duration::from_secs(3600));
        assert_eq!(
            c.get("reg", "repository:b:pull").as_deref(),
            Some("Basic dTpw")
        );
        c.forget("reg", "repository:a:pull");
        assert_eq!(c.get("reg", "repository:a:pull"), None);
        // Expired entries are not returned.
        c.put("reg", "s", "Bearer y".into(), Duration::from_secs(0));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(c.get("reg", "s"), None);
    }
}
