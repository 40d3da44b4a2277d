//! `POST /networks/{id}/connect` and `/disconnect`: a container gets one more interface
//! on the network (running: at once, eth1…; stopped: when it runs again), or loses one.

use berth_core::pod::networks::PodNetwork;
use bollard_stubs::models::{NetworkConnectRequest, NetworkDisconnectRequest};
use http::StatusCode;

use super::{attachment, find};
use crate::DockerApi;
use crate::containers::{self, from_engine};
use crate::error::ApiError;
use crate::http::{Reply, no_content};

fn pod_network<'a>(net: &'a super::Net, what: &str) -> Result<&'a str, ApiError> {
    net.pod_network().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "container cannot be {what} the {} network (network mode {})",
                net.name, net.name
            ),
        )
    })
}

pub async fn connect(api: &DockerApi, key: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let req: NetworkConnectRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    let net = find(api, key)?;
    let id = pod_network(&net, "connected to")?.to_string();
    let rec = containers::find(api, &req.container)?;
    let pod = api.runtime.pod(&rec.pod_id).map_err(from_engine)?;
    if pod.net.join.is_some() || pod.modes.network != berth_core::pod::NamespaceMode::Pod {
        return Err(ApiError::bad_request(format!(
            "container {} shares another network namespace (host, none or container:): it cannot be connected to a network",
            rec.name
        )));
    }
    if attachment(&pod, &id).is_some() || pod.net.networks.iter().any(|n| n.id == id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.name
            ),
        ));
    }
    let aliases = req
        .endpoint_config
        .and_then(|e| e.aliases)
        .unwrap_or_default();
    api.runtime
        .connect_network(&rec.pod_id, PodNetwork { id, aliases })
        .await
        .map_err(from_engine)?;
    super::event(api, "connect", &net.id, &net.name, Some(&rec.id));
    Ok(no_content(StatusCode::OK))
}

pub async fn disconnect(api: &DockerApi, key: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let req: NetworkDisconnectRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    let net = find(api, key)?;
    let id = pod_network(&net, "disconnected from")?.to_string();
    let rec = containers::find(api, &req.container)?;
    let pod = api.runtime.pod(&rec.pod_id).map_err(from_engine)?;
    if !super::pod_networks(&pod).contains(&id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "container {} is not connected to network {}",
                rec.id, net.name
            ),
        ));
    }
    api.runtime
        .disconnect_network(&rec.pod_id, &id)
        .await
        .map_err(from_engine)?;
    super::event(api, "disconnect", &net.id, &net.name, Some(&rec.id));
    Ok(no_content(StatusCode::OK))
}
