//! The network endpoints (`docker network ls|inspect|create|rm|prune|connect|disconnect`)
//! over the pod network port's named networks, and a name server per named network
//! (`dns.rs`). Three networks are built in, as in dockerd: `bridge` (berth's default pod
//! network, no name resolution but links), `host` and `none`; they cannot be removed.
//!
//! Which container is on which network is read from its pod record: the networks it asked
//! for (`net.networks`, with aliases) and where it is attached (`attachments`).

pub mod connect;
pub mod create;
pub mod dns;
pub mod inspect;
pub mod list;
pub mod remove;

use std::collections::HashMap;
use std::net::IpAddr;

use berth_core::pod::PodRecord;
use berth_core::pod::networks::{Attachment, NetworkDef};
use berth_core::pod::ports::PodError;
use berth_core::pod::record::NamespaceMode;
use bollard_stubs::models::EndpointSettings;

use crate::DockerApi;
use crate::containers::API_LABEL;
use crate::error::ApiError;

/// A network as the API shows it: a built-in one or a named one.
#[derive(Debug, Clone)]
pub struct Net {
    pub id: String,
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: &'static str,
    /// The named network; None for the built-in ones.
    pub def: Option<NetworkDef>,
}

impl Net {
    pub fn builtin(&self) -> bool {
        self.def.is_none()
    }

    /// The pod network id behind it: "" for `bridge`, None for host and none.
    pub fn pod_network(&self) -> Option<&str> {
        match (&self.def, self.name.as_str()) {
            (Some(d), _) => Some(&d.id),
            (None, "bridge") => Some(""),
            _ => None,
        }
    }
}

/// A stable id for a built-in network: its name in hex, padded to 64 digits.
fn builtin_id(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0<64}")
}

pub fn failed(e: PodError) -> ApiError {
    match e {
        PodError::InvalidArgument(m) => ApiError::bad_request(m),
        e => ApiError::internal(e.to_string()),
    }
}

/// Every network: the built-in ones, then the named ones, oldest first.
pub fn all(api: &DockerApi) -> Result<Vec<Net>, ApiError> {
    let mut out: Vec<Net> = [("bridge", "bridge"), ("host", "host"), ("none", "null")]
        .into_iter()
        .map(|(name, driver)| Net {
            id: builtin_id(name),
            name: name.into(),
            driver,
            def: None,
        })
        .collect();
    let defs = api.runtime.pods.ports.network.networks().map_err(failed)?;
    out.extend(defs.into_iter().map(|d| Net {
        id: d.id.clone(),
        name: d.name.clone(),
        driver: "bridge",
        def: Some(d),
    }));
    Ok(out)
}

/// dockerd's lookup: a full id, a name, then a unique id prefix; 404 otherwise.
pub fn find(api: &DockerApi, key: &str) -> Result<Net, ApiError> {
    let nets = all(api)?;
    if let Some(n) = nets.iter().find(|n| n.id == key || n.name == key) {
        return Ok(n.clone());
    }
    let mut hits = nets
        .iter()
        .filter(|n| !key.is_empty() && n.id.starts_with(key));
    match (hits.next(), hits.next()) {
        (Some(n), None) => Ok(n.clone()),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "network {key} is ambiguous (more than one network id starts with it)"
        ))),
        _ => Err(ApiError::not_found(format!("network {key} not found"))),
    }
}

/// The Docker pods (a pod per container), with the id of their container.
pub fn docker_pods(api: &DockerApi) -> Vec<(PodRecord, String)> {
    let containers = api.runtime.containers.store.list();
    api.runtime
        .select_pods(|p| {
            (p.labels.get(API_LABEL).map(String::as_str) == Some(crate::containers::API_VALUE))
                .then(|| p.clone())
        })
        .into_iter()
        .filter_map(|p| {
            let c = containers.iter().find(|c| c.pod_id == p.id)?;
            Some((p, c.id.clone()))
        })
        .collect()
}

/// The Docker pods whose container runs: those with live endpoints (what the name
/// servers answer and `network inspect` lists; a stopped container keeps only its
/// configuration, as with dockerd).
pub fn running_pods(api: &DockerApi) -> Vec<(PodRecord, String)> {
    let running: std::collections::HashSet<String> = api
        .runtime
        .containers
        .store
        .list()
        .into_iter()
        .filter(|c| c.state == berth_core::container::record::ContainerState::Running)
        .map(|c| c.id)
        .collect();
    docker_pods(api)
        .into_iter()
        .filter(|(p, cid)| p.state == berth_core::pod::PodState::Ready && running.contains(cid))
        .collect()
}

/// The pod network ids a pod asked for ("" the default one); none for host, none and
/// joined network namespaces.
pub fn pod_networks(p: &PodRecord) -> Vec<String> {
    if p.modes.network != NamespaceMode::Pod || p.net.join.is_some() {
        return Vec::new();
    }
    if p.net.networks.is_empty() {
        return vec![String::new()];
    }
    p.net.networks.iter().map(|n| n.id.clone()).collect()
}

/// Where the pod is attached to `network` (records from before named networks only know
/// their default-network address).
pub fn attachment(p: &PodRecord, network: &str) -> Option<Attachment> {
    if let Some(a) = p.attachments.iter().find(|a| a.network == network) {
        return Some(a.clone());
    }
    (network.is_empty() && p.attachments.is_empty() && pod_networks(p) == [String::new()])
        .then_some(())
        .and(p.ip)
        .map(|ip| Attachment {
            network: String::new(),
            ifname: "eth0".into(),
            ip: Some(ip),
            ..Default::default()
        })
}

/// The aliases the pod has on `network`.
pub fn aliases(p: &PodRecord, network: &str) -> Vec<String> {
    p.net
        .networks
        .iter()
        .find(|n| n.id == network)
        .map(|n| n.aliases.clone())
        .unwrap_or_default()
}

/// An endpoint id: stable per pod and network.
pub fn endpoint_id(pod_id: &str, network: &str) -> String {
    let net = if network.is_empty() { "0" } else { network };
    format!("{:.32}{:0<32.32}", pod_id, net)
}

pub fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_default()
}

/// A container's `NetworkSettings.Networks`, by network name: where its pod is attached
/// (or, stopped, the networks it will attach to, without addresses).
pub fn endpoints(
    api: &DockerApi,
    pod: &PodRecord,
    container_id: &str,
) -> HashMap<String, EndpointSettings> {
    let nets = all(api).unwrap_or_default();
    let by = |pred: &dyn Fn(&Net) -> bool| nets.iter().find(|n| pred(n)).cloned();
    let mut out = HashMap::new();
    let builtin = |name: &str| by(&|n: &Net| n.builtin() && n.name == name);
    let plain = |net: &Net| EndpointSettings {
        network_id: Some(net.id.clone()),
        endpoint_id: Some(endpoint_id(&pod.id, &net.name)),
        ..Default::default()
    };
    match pod.modes.network {
        NamespaceMode::Node => {
            if let Some(n) = builtin("host") {
                out.insert(n.name.clone(), plain(&n));
            }
            return out;
        }
        NamespaceMode::Container => {
            if let Some(n) = builtin("none") {
                out.insert(n.name.clone(), plain(&n));
            }
            return out;
        }
        NamespaceMode::Pod => {}
    }
    let short: String = container_id.chars().take(12).collect();
    for id in pod_networks(pod) {
        let Some(net) = by(&|n: &Net| n.pod_network() == Some(id.as_str())) else {
            continue;
        };
        let a = attachment(pod, &id).filter(|_| pod.state == berth_core::pod::PodState::Ready);
        let mut names = aliases(pod, &id);
        if !net.builtin() {
            names.push(short.clone());
        }
        out.insert(
            net.name.clone(),
            EndpointSettings {
                network_id: Some(net.id.clone()),
                endpoint_id: Some(
                    a.as_ref()
                        .map(|_| endpoint_id(&pod.id, &id))
                        .unwrap_or_default(),
                ),
                gateway: Some(ip_text(a.as_ref().and_then(|a| a.gateway))),
                ip_address: Some(ip_text(a.as_ref().and_then(|a| a.ip))),
                ip_prefix_len: Some(a.as_ref().map_or(0, |a| i64::from(a.prefix))),
                mac_address: Some(a.as_ref().map(|a| a.mac.clone()).unwrap_or_default()),
                aliases: (!net.builtin()).then_some(names),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                ..Default::default()
            },
        );
    }
    out
}

/// The labels map in the API's shape.
pub fn labels(def: Option<&NetworkDef>) -> HashMap<String, String> {
    def.map(|d| d.labels.clone().into_iter().collect())
        .unwrap_or_default()
}

/// A network event (`create`, `destroy`, `connect`, `disconnect`), as dockerd's: the
/// network's name and type, and the container for (dis)connects.
pub fn event(api: &DockerApi, action: &str, id: &str, name: &str, container: Option<&str>) {
    let mut attrs = std::collections::HashMap::from([
        ("name".to_string(), name.to_string()),
        ("type".to_string(), "bridge".to_string()),
    ]);
    if let Some(c) = container {
        attrs.insert("container".to_string(), c.to_string());
    }
    api.events
        .emit(crate::events::Kind::Network, action, id, attrs);
}
