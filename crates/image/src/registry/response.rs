//! Reading registry answers: error bodies, status codes → `ImageError`, error chains.

use berth_core::image::ImageError;
use reqwest::StatusCode;

use super::endpoint::Endpoint;

/// The text of an error and all its causes: reqwest hides the useful part (refused,
/// certificate unknown, ...) in the source chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The registry's explanation from an error body (`{"errors":[{"code","message"}]}`), or
/// the start of the body as text.
pub fn body_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body)
        && !e.errors.is_empty()
    {
        return e
            .errors
            .iter()
            .map(|i| match (i.message.is_empty(), i.code.is_empty()) {
                (false, false) => format!("{} ({})", i.message, i.code),
                (false, true) => i.message.clone(),
                _ => i.code.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details given".to_string()
    } else {
        text.chars().take(300).collect()
    }
}

pub(super) async fn check_status(
    resp: reqwest::Response,
    url: &str,
    ep: &Endpoint,
    what: &str,
) -> Result<reqwest::Response, ImageError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let msg = body_message(&resp.bytes().await.unwrap_or_default());
    Err(match status {
        StatusCode::NOT_FOUND => ImageError::RemoteNotFound {
            registry: ep.describe(),
            reference: what.to_string(),
            message: msg,
        },
        StatusCode::FORBIDDEN => ImageError::Unauthorized {
            registry: ep.describe(),
            message: format!("{what}: access denied: {msg}"),
        },
        _ => ImageError::Registry {
            registry: ep.describe(),
            message: format!("{what}: GET {url} answered {status}: {msg}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies() {
        let b =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(body_message(b), "manifest unknown (MANIFEST_UNKNOWN)");
        assert_eq!(body_message(b""), "no details given");
        assert_eq!(body_message(b"  plain text\n"), "plain text");
    }
}
