//! `POST /auth` (`docker login`): the credentials are checked against the registry (its
//! `/v2/` with basic or bearer auth, by the image store's registry client) and nothing is
//! kept: the CLI stores them in its own config and sends them with each pull and push.

use berth_core::image::RegistryAuth;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json as json_reply};

/// What the CLI sends with `docker login` (when no address is given it sends Docker Hub's).
const DEFAULT_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthBody {
    username: String,
    password: String,
    auth: String,
    serveraddress: String,
    identitytoken: String,
    registrytoken: String,
}

pub async fn login(api: &DockerApi, body: &[u8]) -> Result<Reply, ApiError> {
    let b: AuthBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    let server_address = if b.serveraddress.trim().is_empty() {
        DEFAULT_SERVER.to_string()
    } else {
        b.serveraddress.trim().to_string()
    };
    let auth = RegistryAuth {
        username: b.username,
        password: b.password,
        auth: b.auth,
        server_address,
        identity_token: b.identitytoken,
        registry_token: b.registrytoken,
    };
    api.images.login(auth).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
