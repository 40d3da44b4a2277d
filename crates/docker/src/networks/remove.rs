//! `DELETE /networks/{id}` (`docker network rm`) and `POST /networks/prune`.

use http::StatusCode;
use serde_json::json;

use super::{Net, all, attachment, docker_pods, failed, find};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, no_content, ok_json};
use crate::router::Call;

/// The containers using `net` (attached, or set to attach when they run again).
fn users(api: &DockerApi, net: &Net) -> Vec<String> {
    let Some(id) = net.pod_network() else {
        return Vec::new();
    };
    docker_pods(api)
        .into_iter()
        .filter(|(p, _)| attachment(p, id).is_some() || p.net.networks.iter().any(|n| n.id == id))
        .map(|(p, _)| p.name)
        .collect()
}

async fn remove_net(api: &DockerApi, net: &Net) -> Result<(), ApiError> {
    api.runtime
        .pods
        .ports
        .network
        .remove_network(&net.id)
        .await
        .map_err(failed)?;
    api.dns.stop(&net.id);
    Ok(())
}

pub async fn delete(api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let net = find(api, key)?;
    if net.builtin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            ),
        ));
    }
    if !users(api, &net).is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "error while removing network: network {} id {} has active endpoints",
                net.name, net.id
            ),
        ));
    }
    remove_net(api, &net).await?;
    super::event(api, "destroy", &net.id, &net.name, None);
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// Removes every named network no container uses (filters: label, until is not kept).
pub async fn prune(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["label", "label!"])?;
    let mut deleted = Vec::new();
    for net in all(api)?.into_iter().filter(|n| !n.builtin()) {
        let labels = super::labels(net.def.as_ref());
        let matches = |f: &String| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f),
        };
        if !filters.values("label").all(matches) || filters.values("label!").any(matches) {
            continue;
        }
        if users(api, &net).is_empty() {
            remove_net(api, &net).await?;
            super::event(api, "destroy", &net.id, &net.name, None);
            deleted.push(net.name);
        }
    }
    Ok(ok_json(&json!({"NetworksDeleted": deleted})))
}
