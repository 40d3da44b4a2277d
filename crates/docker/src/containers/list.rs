//! `GET /containers/json?all=&limit=&filters=` (`docker ps`): filters by name, label,
//! status, id and volume, with dockerd's status text ("Up 3 seconds", "Exited (0) 1 minute ago").

use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::pod::record::{PortMapping, Protocol};
use bollard_stubs::models::{
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    ContainerSummaryStateEnum, PortSummary, PortSummaryTypeEnum,
};

use super::{all, docker_name, stored, user_labels};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::router::Call;

pub async fn list(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["name", "label", "status", "id", "volume", "network"])?;
    // network=NAME|ID: the pod network ids (or host/none) the values name.
    let nets: Vec<crate::networks::Net> = filters
        .values("network")
        .filter_map(|v| crate::networks::find(api, v).ok())
        .collect();
    let wants_network = filters.values("network").next().is_some();
    for s in filters.values("status") {
        if !matches!(
            s.as_str(),
            "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
        ) {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'status={s}': Invalid filter 'status={s}'"
            )));
        }
    }
    // dockerd matches each name (with its `/`) against the values as regular expressions.
    let name_res = filters
        .values("name")
        .map(|n| {
            regex::Regex::new(n)
                .map_err(|e| ApiError::bad_request(format!("invalid filter 'name={n}': {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let show_all = call.query.bool("all") || filters.values("status").next().is_some();
    let limit: Option<usize> = call
        .query
        .non_empty("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let mut recs: Vec<ContainerRecord> = all(api)
        .await
        .into_iter()
        .filter(|r| show_all || limit.is_some() || r.state == ContainerState::Running)
        .filter(|r| {
            let status = state_text(r);
            let labels = user_labels(r);
            let name = docker_name(r);
            (name_res.is_empty() || name_res.iter().any(|re| re.is_match(&name)))
                && any_or_none(filters.values("id"), |i| r.id.starts_with(i.as_str()))
                && any_or_none(filters.values("status"), |s| s == status)
                && (filters.values("volume").next().is_none() || {
                    let mounts = stored(api, r).mounts;
                    filters
                        .values("volume")
                        .any(|v| mounts.iter().any(|m| m.matches(v)))
                })
                && (!wants_network || on_any(api, r, &nets))
                && filters.values("label").all(|l| match l.split_once('=') {
                    Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                    None => labels.contains_key(l),
                })
        })
        .collect();
    // Newest first, as dockerd lists.
    recs.reverse();
    if let Some(n) = limit {
        recs.truncate(n);
    }
    let now = berth_engine::containers::lifecycle::now_ns();
    let mut out: Vec<ContainerSummary> = recs.iter().map(|r| summary(api, r, now)).collect();
    if call.query.bool("size") {
        add_sizes(api, &mut out, &recs).await;
    }
    Ok(ok_json(&out))
}

/// `ps -s` and `system df`: each container's writable layer, and that plus its image.
pub async fn add_sizes(api: &DockerApi, out: &mut [ContainerSummary], recs: &[ContainerRecord]) {
    let usage = api.runtime.container_usage(recs.to_vec()).await;
    let images = api.images.list();
    for ((s, r), u) in out.iter_mut().zip(recs).zip(usage) {
        let rw = u.layer.map_or(0, |l| l.used_bytes as i64);
        let image = images
            .iter()
            .find(|i| i.id.to_string() == r.image_id)
            .map_or(0, |i| i.size as i64);
        s.size_rw = Some(rw);
        s.size_root_fs = Some(rw + image);
    }
}

/// Whether the container's pod is on one of `nets`.
fn on_any(api: &DockerApi, r: &ContainerRecord, nets: &[crate::networks::Net]) -> bool {
    use berth_core::pod::record::NamespaceMode;
    let Ok(pod) = api.runtime.pod(&r.pod_id) else {
        return false;
    };
    let ids = crate::networks::pod_networks(&pod);
    nets.iter().any(|n| match n.pod_network() {
        Some(id) => ids.iter().any(|x| x == id),
        None => match n.name.as_str() {
            "host" => pod.modes.network == NamespaceMode::Node,
            _ => pod.modes.network == NamespaceMode::Container,
        },
    })
}

/// Passes when no value is given or when one of them matches.
fn any_or_none<'a>(
    mut values: impl Iterator<Item = &'a String>,
    mut f: impl FnMut(&String) -> bool,
) -> bool {
    match values.next() {
        None => true,
        Some(first) => f(first) || values.any(f),
    }
}

pub fn state_text(r: &ContainerRecord) -> &'static str {
    match r.state {
        ContainerState::Creating | ContainerState::Created => "created",
        ContainerState::Running if r.paused => "paused",
        ContainerState::Running => "running",
        ContainerState::Exited => "exited",
    }
}

pub fn summary(api: &DockerApi, r: &ContainerRecord, now: i64) -> ContainerSummary {
    let st = stored(api, r);
    let pod = api.runtime.pod(&r.pod_id).ok();
    let ports = pod
        .as_ref()
        .map(|p| p.port_mappings.iter().map(port_summary).collect())
        .unwrap_or_default();
    let network_mode = st
        .body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_else(|| "default".into());
    ContainerSummary {
        id: Some(r.id.clone()),
        names: Some(vec![docker_name(r)]),
        image: Some(r.image.clone()),
        image_id: Some(r.image_id.clone()),
        command: Some(super::inspect::argv(api, r).join(" ")),
        created: Some(r.created_at / 1_000_000_000),
        ports: Some(ports),
        labels: Some(user_labels(r)),
        state: Some(match r.state {
            ContainerState::Creating | ContainerState::Created => {
                ContainerSummaryStateEnum::CREATED
            }
            ContainerState::Running if r.paused => ContainerSummaryStateEnum::PAUSED,
            ContainerState::Running => ContainerSummaryStateEnum::RUNNING,
            ContainerState::Exited => ContainerSummaryStateEnum::EXITED,
        }),
        status: Some(status_text(r, now)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(network_mode),
            annotations: None,
        }),
        mounts: Some(st.mounts.iter().map(|m| m.to_docker()).collect()),
        network_settings: pod.as_ref().map(|p| ContainerSummaryNetworkSettings {
            networks: Some(crate::networks::endpoints(api, p, &r.id)),
        }),
        ..Default::default()
    }
}

fn port_summary(m: &PortMapping) -> PortSummary {
    PortSummary {
        ip: Some(
            m.host_ip
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
        ),
        private_port: m.container_port,
        public_port: Some(m.host_port),
        typ: Some(match m.protocol {
            Protocol::Tcp => PortSummaryTypeEnum::TCP,
            Protocol::Udp => PortSummaryTypeEnum::UDP,
            Protocol::Sctp => PortSummaryTypeEnum::SCTP,
        }),
    }
}

/// `docker ps`'s STATUS column.
pub fn status_text(r: &ContainerRecord, now: i64) -> String {
    match r.state {
        ContainerState::Creating | ContainerState::Created => "Created".into(),
        ContainerState::Running if r.paused => {
            format!("Up {} (Paused)", human_duration(now - r.started_at))
        }
        ContainerState::Running => format!("Up {}", human_duration(now - r.started_at)),
        ContainerState::Exited if r.finished_at == 0 => "Created".into(),
        ContainerState::Exited => format!(
            "Exited ({}) {} ago",
            r.exit_code,
            human_duration(now - r.finished_at)
        ),
    }
}

/// go-units' HumanDuration.
pub fn human_duration(ns: i64) -> String {
    let secs = ns.max(0) / 1_000_000_000;
    let (mins, hours) = (secs / 60, secs / 3600);
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if mins == 1 => "About a minute".into(),
        _ if mins < 60 => format!("{mins} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = 1_000_000_000;
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(s), "1 second");
        assert_eq!(human_duration(5 * s), "5 seconds");
        assert_eq!(human_duration(61 * s), "About a minute");
        assert_eq!(human_duration(600 * s), "10 minutes");
        assert_eq!(human_duration(3 * 3600 * s), "3 hours");
        assert_eq!(human_duration(72 * 3600 * s), "3 days");
    }
}
