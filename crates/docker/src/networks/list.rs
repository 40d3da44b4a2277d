//! `GET /networks?filters=` (`docker network ls`): filters name (substring), id (prefix),
//! label, driver, type (custom|builtin) and dangling (no container attached).

use super::inspect::render;
use super::{all, attachment, docker_pods, labels};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::router::Call;

pub fn list(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["name", "id", "label", "driver", "type", "dangling"])?;
    for t in filters.values("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}' (custom or builtin)"
            )));
        }
    }
    let dangling = filters.bool("dangling")?;
    let pods = docker_pods(api);
    let out: Vec<_> = all(api)?
        .into_iter()
        .filter(|n| {
            let l = labels(n.def.as_ref());
            let in_use = n.pod_network().is_some_and(|id| {
                pods.iter().any(|(p, _)| {
                    attachment(p, id).is_some() || p.net.networks.iter().any(|x| x.id == id)
                })
            });
            any(filters.values("name"), |v| n.name.contains(v.as_str()))
                && any(filters.values("id"), |v| n.id.starts_with(v.as_str()))
                && any(filters.values("driver"), |v| v == n.driver)
                && any(filters.values("type"), |v| (v == "builtin") == n.builtin())
                && filters.values("label").all(|f| match f.split_once('=') {
                    Some((k, v)) => l.get(k).is_some_and(|x| x == v),
                    None => l.contains_key(f),
                })
                // dangling=true: unused named networks (what prune would remove).
                && dangling.is_none_or(|d| d == (!n.builtin() && !in_use))
        })
        .map(|n| render(api, &n, false))
        .collect();
    Ok(ok_json(&out))
}

fn any<'a>(
    mut values: impl Iterator<Item = &'a String>,
    mut f: impl FnMut(&String) -> bool,
) -> bool {
    match values.next() {
        None => true,
        Some(first) => f(first) || values.any(f),
    }
}
