//! A container's `HostConfig.NetworkMode` (and links, aliases) as its pod's network:
//! `bridge`/`default` (berth's default network; `--link` adds /etc/hosts lines), `host`,
//! `none` (loopback only), `container:<name|id>` (the network namespace of that running
//! container's pod, its hostname and DNS settings too), or a named network by name or id
//! (its name server in resolv.conf; aliases from `NetworkingConfig.EndpointsConfig`).

use berth_core::container::record::ContainerState;
use berth_core::pod::networks::{PodNetOptions, PodNetwork};
use berth_core::pod::record::{DnsConfig, NamespaceMode};
use bollard_stubs::models::{ContainerCreateBody, HostConfig};

use super::{find_synced, from_engine};
use crate::DockerApi;
use crate::error::ApiError;
use crate::networks;

/// What the network mode makes of the pod.
#[derive(Debug, Default, Clone)]
pub struct NetChoice {
    pub mode: Option<NamespaceMode>,
    pub net: PodNetOptions,
    pub dns: DnsConfig,
    /// The hostname it must have (that of the container whose namespace it joins).
    pub hostname: Option<String>,
}

pub async fn choose(
    api: &DockerApi,
    body: &ContainerCreateBody,
    host: &HostConfig,
) -> Result<NetChoice, ApiError> {
    let mode = host.network_mode.as_deref().unwrap_or("");
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref());
    let fixed = endpoints.into_iter().flatten().find(|(_, e)| {
        e.ipam_config.as_ref().is_some_and(|c| {
            c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                || c.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
        })
    });
    if let Some((net, _)) = fixed {
        return Err(ApiError::bad_request(format!(
            "a fixed address on network {net} (--ip, --ip6) is not supported: berth assigns addresses"
        )));
    }
    let mut out = NetChoice::default();
    match mode {
        "" | "default" | "bridge" => {
            out.mode = Some(NamespaceMode::Pod);
            out.net.extra_hosts = links(api, host, "").await?;
        }
        "host" => out.mode = Some(NamespaceMode::Node),
        // A network namespace of its own with only loopback.
        "none" => out.mode = Some(NamespaceMode::Container),
        _ if mode.starts_with("container:") => {
            let key = &mode["container:".len()..];
            let other = find_synced(api, key).await?;
            if other.state != ContainerState::Running || other.paused {
                return Err(ApiError::conflict(format!(
                    "cannot join network of a non running container: {key}"
                )));
            }
            let pod = api.runtime.pod(&other.pod_id).map_err(from_engine)?;
            if pod.modes.network != NamespaceMode::Pod {
                return Err(ApiError::conflict(format!(
                    "container {key} has no network namespace of its own to join (network mode host or none)"
                )));
            }
            // Its owner, when it joined another one itself.
            out.net.join = Some(pod.net.join.clone().unwrap_or(pod.id.clone()));
            out.net.extra_hosts = pod.net.extra_hosts.clone();
            out.dns = pod.dns.clone();
            out.hostname = Some(pod.hostname.clone());
            out.mode = Some(NamespaceMode::Pod);
        }
        _ => {
            let net = networks::find(api, mode)?;
            let Some(def) = net.def.clone() else {
                // A built-in network named by its id.
                let mut h = host.clone();
                h.network_mode = Some(net.name.clone());
                return Box::pin(choose(api, body, &h)).await;
            };
            let aliases = endpoints
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k == mode || **k == def.name || **k == def.id)
                .flat_map(|(_, e)| e.aliases.clone().unwrap_or_default())
                .collect();
            out.net.networks = vec![PodNetwork {
                id: def.id.clone(),
                aliases,
            }];
            out.dns.servers = vec![def.gateway.to_string()];
            // On a named network a link is one more name for the other container, here
            // for this one only: a hosts line with its address on that network.
            out.net.extra_hosts = links(api, host, &def.id).await?;
            out.mode = Some(NamespaceMode::Pod);
        }
    }
    Ok(out)
}

/// `--link other[:alias]` (sent as `other:alias` or `/other:/me/alias`): a hosts line
/// `IP alias other` per link, with the address of the running container `other` on
/// `network` ("" the default one).
async fn links(api: &DockerApi, host: &HostConfig, network: &str) -> Result<Vec<String>, ApiError> {
    let mut lines = Vec::new();
    for link in host.links.iter().flatten() {
        let (target, alias) = link.split_once(':').unwrap_or((link, link));
        let target = target.trim_start_matches('/');
        let alias = alias.rsplit('/').next().unwrap_or(alias);
        let other = find_synced(api, target).await.map_err(|_| {
            ApiError::bad_request(format!(
                "could not get container for {target} (--link {link})"
            ))
        })?;
        if other.state != ContainerState::Running {
            return Err(ApiError::bad_request(format!(
                "cannot link to a non running container: /{} AS /{alias}",
                other.name
            )));
        }
        let pod = api.runtime.pod(&other.pod_id).map_err(from_engine)?;
        let Some(ip) = networks::attachment(&pod, network).and_then(|a| a.ip) else {
            return Err(ApiError::bad_request(format!(
                "cannot link to /{}: it is not on the network of this container",
                other.name
            )));
        };
        let short: String = other.id.chars().take(12).collect();
        let names = if alias == other.name {
            format!("{alias} {short}")
        } else {
            format!("{alias} {short} {}", other.name)
        };
        lines.push(format!("{ip}\t{names}"));
    }
    Ok(lines)
}
