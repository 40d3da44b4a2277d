//! `POST /networks/create` (`docker network create`): a named bridge network with a subnet
//! of its own (given, or the first free one of dockerd's pools) and its name server.

use std::collections::BTreeMap;

use berth_core::pod::ipam::Subnet;
use berth_core::pod::networks::NetworkCreate;
use bollard_stubs::models::{NetworkCreateRequest, NetworkCreateResponse};
use http::StatusCode;

use super::{all, failed};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json};

pub async fn create(api: &DockerApi, body: &[u8]) -> Result<Reply, ApiError> {
    let req: NetworkCreateRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    match req.driver.as_deref().unwrap_or("") {
        "" | "bridge" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "network driver {other:?} is not supported (only \"bridge\")"
            )));
        }
    }
    if req.enable_ipv6 == Some(true) {
        return Err(ApiError::bad_request(
            "IPv6 on named networks is not supported (--ipv6)",
        ));
    }
    if let Some(n) = all(api)?.iter().find(|n| n.name == req.name) {
        return Err(ApiError::conflict(format!(
            "network with name {} already exists",
            n.name
        )));
    }
    let configs = req
        .ipam
        .as_ref()
        .and_then(|i| i.config.clone())
        .unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad_request(
            "only one IPAM configuration (one --subnet) per network is supported",
        ));
    }
    let cfg = configs.into_iter().next().unwrap_or_default();
    if cfg.ip_range.as_deref().is_some_and(|r| !r.is_empty())
        || cfg
            .auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
    {
        return Err(ApiError::bad_request(
            "--ip-range and --aux-address are not supported: addresses come from the whole subnet",
        ));
    }
    let subnet = match cfg.subnet.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<Subnet>()
                .map_err(|e| ApiError::bad_request(format!("invalid subnet {s}: {e}")))?,
        ),
        None => None,
    };
    let gateway = match cfg.gateway.as_deref().filter(|s| !s.is_empty()) {
        Some(g) if subnet.is_none() => {
            return Err(ApiError::bad_request(format!(
                "gateway {g} needs a subnet (--subnet)"
            )));
        }
        Some(g) => Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gateway address {g}")))?,
        ),
        None => None,
    };
    let sorted = |m: Option<std::collections::HashMap<String, String>>| -> BTreeMap<_, _> {
        m.unwrap_or_default().into_iter().collect()
    };
    let def = api
        .runtime
        .pods
        .ports
        .network
        .create_network(&NetworkCreate {
            name: req.name.clone(),
            subnet,
            gateway,
            internal: req.internal.unwrap_or(false),
            labels: sorted(req.labels),
            options: sorted(req.options),
        })
        .await
        .map_err(failed)?;
    api.dns.start(&def);
    super::event(api, "create", &def.id, &req.name, None);
    Ok(json(
        StatusCode::CREATED,
        &NetworkCreateResponse {
            id: def.id,
            warning: String::new(),
        },
    ))
}
