//! `GET /networks/{id}` (`docker network inspect`): dockerd's shape of a network, with its
//! IPAM configuration and, for inspect, the containers attached.

use berth_core::pod::ipam::Subnet;
use serde_json::{Map, Value, json};

use super::{Net, attachment, endpoint_id, find, labels, running_pods};
use crate::DockerApi;
use crate::containers::rfc3339;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};

pub fn inspect(api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let net = find(api, key)?;
    Ok(ok_json(&render(api, &net, true)))
}

/// The default network's subnet and gateway (from berthd's configuration).
fn default_ipam(api: &DockerApi) -> Option<(String, String)> {
    let s: Subnet = api.runtime.info.config.network.subnet.parse().ok()?;
    Some((s.to_string(), s.gateway().to_string()))
}

/// The network as `GET /networks` and `GET /networks/{id}` answer it; `containers`: with
/// the Containers map (`ls` leaves it empty, as dockerd).
pub fn render(api: &DockerApi, net: &Net, containers: bool) -> Value {
    let ipam_config: Vec<Value> = match (&net.def, net.name.as_str()) {
        (Some(d), _) => {
            vec![json!({"Subnet": d.subnet.to_string(), "Gateway": d.gateway.to_string()})]
        }
        (None, "bridge") => default_ipam(api)
            .map(|(s, g)| vec![json!({"Subnet": s, "Gateway": g})])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut attached = Map::new();
    if containers && let Some(id) = net.pod_network() {
        // Only running containers have endpoints (a stopped one keeps its configuration).
        for (pod, cid) in running_pods(api) {
            let Some(a) = attachment(&pod, id) else {
                continue;
            };
            attached.insert(
                cid,
                json!({
                    "Name": pod.name,
                    "EndpointID": endpoint_id(&pod.id, id),
                    "MacAddress": a.mac,
                    "IPv4Address": a.ip.map(|ip| format!("{ip}/{}", a.prefix)).unwrap_or_default(),
                    "IPv6Address": "",
                }),
            );
        }
    }
    if containers && net.name == "host" {
        for (pod, cid) in running_pods(api) {
            if pod.modes.network == berth_core::pod::record::NamespaceMode::Node {
                attached.insert(
                    cid,
                    json!({"Name": pod.name, "EndpointID": endpoint_id(&pod.id, "host"),
                        "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}),
                );
            }
        }
    }
    let options: std::collections::HashMap<String, String> = net
        .def
        .as_ref()
        .map(|d| d.options.clone().into_iter().collect())
        .unwrap_or_default();
    json!({
        "Name": net.name,
        "Id": net.id,
        "Created": rfc3339(net.def.as_ref().map_or(0, |d| d.created_at)),
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": ipam_config},
        "Internal": net.def.as_ref().is_some_and(|d| d.internal),
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": attached,
        "Options": options,
        "Labels": labels(net.def.as_ref()),
    })
}
