//! `GET /containers/{id}/json` (`docker inspect`): the record, the create request kept in
//! the pod and the pod's network, in dockerd's shape.

use std::collections::HashMap;

use berth_core::container::ImageConfig;
use berth_core::container::record::{ContainerRecord, ContainerState};
use bollard_stubs::models::{
    ContainerConfig, ContainerInspectResponse, ContainerState as DockerState,
    ContainerStateStatusEnum, EndpointSettings, HostConfig, HostConfigLogConfig, NetworkSettings,
    PortBinding,
};
use serde::Serialize;

use super::{docker_name, find_synced, rfc3339, stored, user_labels};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};

/// API 1.41's NetworkSettings: bollard's (1.53) plus the top-level addresses 1.41 clients
/// read (`{{.NetworkSettings.IPAddress}}`), which later versions dropped.
#[derive(Serialize)]
struct Network {
    #[serde(flatten)]
    base: NetworkSettings,
    #[serde(rename = "IPAddress")]
    ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    ip_prefix_len: i64,
    #[serde(rename = "Gateway")]
    gateway: String,
    #[serde(rename = "MacAddress")]
    mac_address: String,
}

#[derive(Serialize)]
struct Inspect {
    #[serde(flatten)]
    base: ContainerInspectResponse,
    #[serde(rename = "NetworkSettings")]
    network: Network,
}

pub fn image_config(api: &DockerApi, r: &ContainerRecord) -> ImageConfig {
    api.images
        .find(&r.image_id)
        .and_then(|i| ImageConfig::from_json(&i.config).ok())
        .unwrap_or_default()
}

/// `Config.Volumes`: the request's and the image's, as dockerd merges them.
fn declared_volumes(
    api: &DockerApi,
    r: &ContainerRecord,
    asked: Option<&[String]>,
) -> Option<Vec<String>> {
    let mut out: Vec<String> = asked.unwrap_or_default().to_vec();
    if let Some(image) = api.images.find(&r.image_id) {
        for v in crate::volumes::spec::image_volumes(&image) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The program and its arguments as they run: the request's, else the image's.
pub fn argv(api: &DockerApi, r: &ContainerRecord) -> Vec<String> {
    let (cmd, args) = (&r.config.command, &r.config.args);
    if !cmd.is_empty() {
        return cmd.iter().chain(args).cloned().collect();
    }
    let img = image_config(api, r);
    let args = if args.is_empty() { &img.cmd } else { args };
    img.entrypoint.iter().chain(args).cloned().collect()
}

/// The container's Config as dockerd shows it: the create request over the image's.
pub fn run_config(
    api: &DockerApi,
    r: &ContainerRecord,
    body: &bollard_stubs::models::ContainerCreateBody,
    pod: Option<&berth_core::pod::record::PodRecord>,
    img: &ImageConfig,
) -> ContainerConfig {
    let mut env: Vec<String> = img.env.clone();
    for e in body.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    ContainerConfig {
        hostname: pod.map(|p| p.hostname.clone()),
        domainname: Some(String::new()),
        user: Some(body.user.clone().unwrap_or(img.user.clone())),
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        exposed_ports: body.exposed_ports.clone(),
        tty: Some(r.config.tty),
        open_stdin: Some(r.config.stdin),
        stdin_once: Some(r.config.stdin_once),
        env: Some(env),
        cmd: Some(if r.config.args.is_empty() && r.config.command.is_empty() {
            img.cmd.clone()
        } else {
            r.config.args.clone()
        }),
        image: Some(r.image.clone()),
        working_dir: Some(if r.config.working_dir.is_empty() {
            img.working_dir.clone()
        } else {
            r.config.working_dir.clone()
        }),
        entrypoint: Some(if r.config.command.is_empty() {
            img.entrypoint.clone()
        } else {
            r.config.command.clone()
        }),
        labels: Some(user_labels(r)),
        stop_signal: r.stop_signal.clone(),
        stop_timeout: body.stop_timeout,
        volumes: declared_volumes(api, r, body.volumes.as_deref()),
        ..Default::default()
    }
}

pub async fn inspect(api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let r = find_synced(api, key).await?;
    let st = stored(api, &r);
    let pod = api.runtime.pod(&r.pod_id).ok();
    let pid = if r.state == ContainerState::Running {
        api.runtime.container_pid(&r.id).await.unwrap_or(0)
    } else {
        0
    };
    let argv = argv(api, &r);
    let img = image_config(api, &r);
    let body = &st.body;
    let host = body.host_config.clone().unwrap_or_default();
    let network_mode = host
        .network_mode
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "default".into());
    let config = run_config(api, &r, body, pod.as_ref(), &img);
    let mut ports: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for m in pod.iter().flat_map(|p| p.port_mappings.iter()) {
        let key = format!("{}/{}", m.container_port, m.protocol.as_str());
        ports
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(
                    m.host_ip
                        .map(|ip| ip.to_string())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                ),
                host_port: Some(m.host_port.to_string()),
            });
    }
    let networks: HashMap<String, EndpointSettings> = pod
        .as_ref()
        .map(|p| crate::networks::endpoints(api, p, &r.id))
        .unwrap_or_default();
    // 1.41's top-level addresses are the default bridge's (empty on other networks).
    let bridge = networks.get("bridge").cloned().unwrap_or_default();
    let restarting = api.runtime.is_restarting(&r.id);
    let state = DockerState {
        status: Some(match r.state {
            ContainerState::Creating | ContainerState::Created => ContainerStateStatusEnum::CREATED,
            ContainerState::Running if r.paused => ContainerStateStatusEnum::PAUSED,
            ContainerState::Running => ContainerStateStatusEnum::RUNNING,
            ContainerState::Exited if restarting => ContainerStateStatusEnum::RESTARTING,
            ContainerState::Exited => ContainerStateStatusEnum::EXITED,
        }),
        running: Some(r.state == ContainerState::Running),
        paused: Some(r.paused),
        restarting: Some(restarting),
        oom_killed: Some(r.reason == "OOMKilled"),
        dead: Some(false),
        pid: Some(pid as i64),
        exit_code: Some(r.exit_code as i64),
        error: Some(if r.reason == "StartError" {
            r.message.clone()
        } else {
            String::new()
        }),
        started_at: Some(rfc3339(r.started_at)),
        finished_at: Some(rfc3339(r.finished_at)),
        health: None,
    };
    let host_config = HostConfig {
        network_mode: Some(network_mode),
        port_bindings: Some(host.port_bindings.clone().unwrap_or_default()),
        // `docker logs` is served from the container's log file, as with dockerd's
        // default driver; the SDK's run(detach=False) reads the output that way.
        log_config: Some(host.log_config.clone().unwrap_or(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(Default::default()),
        })),
        ..host
    };
    let base = ContainerInspectResponse {
        id: Some(r.id.clone()),
        created: Some(rfc3339(r.created_at)),
        path: argv.first().cloned(),
        args: Some(argv.iter().skip(1).cloned().collect()),
        state: Some(state),
        image: Some(r.image_id.clone()),
        resolv_conf_path: pod
            .as_ref()
            .map(|p| p.dir.join("resolv.conf").display().to_string()),
        hostname_path: pod
            .as_ref()
            .map(|p| p.dir.join("hostname").display().to_string()),
        hosts_path: pod
            .as_ref()
            .map(|p| p.dir.join("hosts").display().to_string()),
        log_path: r.log_path.as_ref().map(|p| p.display().to_string()),
        name: Some(docker_name(&r)),
        restart_count: Some(i64::from(r.restart_count)),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        host_config: Some(host_config),
        config: Some(config),
        mounts: Some(st.mounts.iter().map(|m| m.to_docker()).collect()),
        ..Default::default()
    };
    Ok(ok_json(&Inspect {
        base,
        network: Network {
            base: NetworkSettings {
                sandbox_id: Some(r.pod_id.clone()),
                ports: Some(ports),
                networks: Some(networks),
                ..Default::default()
            },
            ip_address: bridge.ip_address.unwrap_or_default(),
            ip_prefix_len: bridge.ip_prefix_len.unwrap_or(0),
            gateway: bridge.gateway.unwrap_or_default(),
            mac_address: bridge.mac_address.unwrap_or_default(),
        },
    }))
}
