//! Where credentials come from: the pull request's `AuthConfig`, else the docker-style
//! `config.json` (`auths` map keyed by registry host, `https://index.docker.io/v1/` for Hub).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use berth_core::image::RegistryAuth;
use serde::Deserialize;

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// OAuth2 refresh token, exchanged at the token endpoint (`grant_type=refresh_token`).
    IdentityToken {
        username: String,
        token: String,
    },
    /// A bearer token sent to the registry as is.
    RegistryToken(String),
}

// Never print secrets, not even at debug level.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username})"),
            Credentials::IdentityToken { username, .. } => write!(f, "IdentityToken({username})"),
            Credentials::RegistryToken(_) => write!(f, "RegistryToken"),
        }
    }
}

impl Credentials {
    /// `user:password` for a basic `Authorization` header, when these credentials have one.
    pub fn basic(&self) -> Option<(&str, &str)> {
        match self {
            Credentials::Basic { username, password } => Some((username, password)),
            _ => None,
        }
    }
}

fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("`auth` is not valid base64: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "`auth` is not UTF-8".to_string())?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| "`auth` must be base64 of username:password".to_string())?;
    Ok((u.to_string(), p.to_string()))
}

fn build(
    username: &str,
    password: &str,
    auth: &str,
    identity_token: &str,
    registry_token: &str,
) -> Result<Option<Credentials>, String> {
    if !registry_token.is_empty() {
        return Ok(Some(Credentials::RegistryToken(registry_token.to_string())));
    }
    let (user, pass) = if username.is_empty() && !auth.is_empty() {
        decode_auth(auth)?
    } else {
        (username.to_string(), password.to_string())
    };
    if !identity_token.is_empty() {
        return Ok(Some(Credentials::IdentityToken {
            username: user,
            token: identity_token.to_string(),
        }));
    }
    if user.is_empty() && pass.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::Basic {
        username: user,
        password: pass,
    }))
}

/// Credentials carried by a pull request.
pub fn from_request(a: &RegistryAuth) -> Result<Option<Credentials>, String> {
    build(
        &a.username,
        &a.password,
        &a.auth,
        &a.identity_token,
        &a.registry_token,
    )
}

/// Maps a config.json key (`https://index.docker.io/v1/`, `http://h:5000`, `h:5000/`) to the
/// registry name used in references.
pub fn normalize_key(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        h => h.to_ascii_lowercase(),
    }
}

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    auth: String,
    username: String,
    password: String,
    identitytoken: String,
    registrytoken: String,
}

/// Looks `registry` up in a docker config.json. A missing file (or an empty path) means no
/// credentials; an unreadable or malformed file is an error, so a typo is not silently
/// turned into anonymous pulls.
pub fn from_file(path: &Path, registry: &str) -> Result<Option<Credentials>, String> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading credentials file {}: {e}", path.display())),
    };
    lookup(&text, registry).map_err(|e| format!("credentials file {}: {e}", path.display()))
}

/// The pure part of [`from_file`].
pub fn lookup(text: &str, registry: &str) -> Result<Option<Credentials>, String> {
    let file: AuthFile = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let want = normalize_key(registry);
    // An exact key wins over a normalised one (e.g. `h:5000` over `https://h:5000/v2/`).
    let entry = file.auths.get(registry).or_else(|| {
        file.auths
            .iter()
            .find(|(k, _)| normalize_key(k) == want)
            .map(|(_, v)| v)
    });
    match entry {
        None => Ok(None),
        Some(e) => build(
            &e.username,
            &e.password,
            &e.auth,
            &e.identitytoken,
            &e.registrytoken,
        )
        .map_err(|m| format!("entry for {registry}: {m}")),
    }
}

impl Credentials {
    /// A fingerprint of these credentials (a hash, never the secret): what the token cache
    /// files the headers they earned under, so that one client's credentials never serve
    /// another's request.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        match self {
            Credentials::Basic { username, password } => {
                h.update(b"basic\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.as_bytes());
            }
            Credentials::IdentityToken { username, token } => {
                h.update(b"identity\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(token.as_bytes());
            }
            Credentials::RegistryToken(t) => {
                h.update(b"token\0");
                h.update(t.as_bytes());
            }
        }
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn fingerprints_tell_credentials_apart_and_hide_them() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        let a = basic("me", "right").fingerprint();
        assert_eq!(a, basic("me", "right").fingerprint());
        assert_ne!(a, basic("me", "wrong").fingerprint());
        assert_ne!(
            a,
            Credentials::RegistryToken("me\0right".into()).fingerprint()
        );
        assert!(!a.contains("right") && a.len() == 32, "{a}");
    }

    use super::*;

    #[test]
    fn request_credentials() {
        let mut a = RegistryAuth {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert_eq!(
            from_request(&a).unwrap(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        a = RegistryAuth {
            auth: "dTpwOng=".into(), // u:p:x
            ..Default::default()
        };
        assert_eq!(
            from_request(&a).unwrap().unwrap().basic(),
            Some(("u", "p:x"))
        );
        a.registry_token = "tok".into();
        assert_eq!(
            from_request(&a).unwrap(),
            Some(Credentials::RegistryToken("tok".into()))
        );
        a = RegistryAuth {
            identity_token: "refresh".into(),
            ..Default::default()
        };
        assert!(matches!(
            from_request(&a).unwrap(),
            Some(Credentials::IdentityToken { .. })
        ));
        assert_eq!(from_request(&RegistryAuth::default()).unwrap(), None);
        a = RegistryAuth {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(from_request(&a).is_err());
    }

    #[test]
    fn config_json_keys() {
        let text = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},
            "http://127.0.0.1:5000":{"username":"a","password":"b"},
            "quay.io":{"identitytoken":"rt","auth":"cTpx"}
        }}"#;
        assert_eq!(
            lookup(text, "docker.io").unwrap().unwrap().basic(),
            Some(("hub", "secret"))
        );
        assert_eq!(
            lookup(text, "127.0.0.1:5000").unwrap().unwrap().basic(),
            Some(("a", "b"))
        );
        assert_eq!(
            lookup(text, "quay.io").unwrap(),
            Some(Credentials::IdentityToken {
                username: "q".into(),
                token: "rt".into()
            })
        );
        assert_eq!(lookup(text, "ghcr.io").unwrap(), None);
        assert_eq!(lookup("{}", "ghcr.io").unwrap(), None);
        assert!(lookup("{not json", "x").is_err());
    }

    #[test]
    fn missing_file_is_anonymous() {
        assert_eq!(
            from_file(Path::new("/nonexistent/berth/config.json"), "x").unwrap(),
            None
        );
        assert_eq!(from_file(Path::new(""), "x").unwrap(), None);
    }
}
