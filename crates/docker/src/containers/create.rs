//! `POST /containers/create?name=`: Docker's Config and HostConfig become a berth pod
//! (network mode, published ports, hostname) with one container (process, mounts,
//! resources), made in one step by the engine.

use std::collections::BTreeMap;

use berth_core::container::{ContainerConfig, Mount, SecurityContext};
use berth_core::image::Image;
use berth_core::pod::record::{NamespaceMode, NamespaceModes};
use berth_engine::containers::create::PIDS_LIMIT_ANNOTATION;
use berth_engine::{ContainerSpec, PodSpec};
use bollard_stubs::models::{ContainerCreateBody, ContainerCreateResponse, HostConfig};

use super::host_config::{ports, resources};
use http::StatusCode;

use super::{API_LABEL, API_VALUE, NAMESPACE, Stored, from_engine, namegen};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json};
use crate::images;
use crate::router::Call;
use crate::volumes;
use crate::volumes::attach::{Attached, attach, discard};

/// The log file's name inside the container's log directory.
pub const LOG_FILE: &str = "container.log";

pub async fn create(call: &Call, api: &DockerApi, body: &[u8]) -> Result<Reply, ApiError> {
    let body: ContainerCreateBody = if body.is_empty() {
        ContainerCreateBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?
    };
    let id = create_container(api, call.query.non_empty("name"), body).await?;
    Ok(json(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id,
            warnings: Vec::new(),
        },
    ))
}

/// Creates the container `body` describes (named `name`, else a generated name); its id.
/// Also what a build's RUN and COPY steps create their containers with.
pub async fn create_container(
    api: &DockerApi,
    name: Option<&str>,
    body: ContainerCreateBody,
) -> Result<String, ApiError> {
    let name = match name {
        Some(n) => {
            let n = namegen::validate(n)?.to_string();
            if let Ok(other) = super::find(api, &format!("/{n}"))
                && other.name == n
            {
                return Err(conflict(&n, &other.id));
            }
            n
        }
        None => free_name(api),
    };
    let image_name = body
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("no image was given (Config.Image is empty)"))?;
    let image = images::find(api, &image_name)?;
    let host = body.host_config.clone().unwrap_or_default();
    let log_dir = api.log_dir.join(format!(
        "{name}-{}",
        berth_engine::containers::lifecycle::now_ns()
    ));
    let net = super::network_mode::choose(api, &body, &host).await?;
    let from = volumes::attach::volumes_from(api, &host)?;
    let image_volumes = volumes::spec::image_volumes(&image);
    let plan = volumes::spec::plan(&body, &host, from, &image_volumes)?;
    // Volumes in use are counted from the containers' records: hold off `volume rm` and
    // prune until this container's record names its volumes.
    let _volumes_held = if plan.iter().any(|p| {
        matches!(
            p.source,
            volumes::spec::Source::Volume { .. } | volumes::spec::Source::Shared(_)
        )
    }) {
        Some(api.volumes.lock.lock().await)
    } else {
        None
    };
    let attached = attach(&api.volumes.store, plan)?;
    let req = Request {
        name: &name,
        image_name: &image_name,
        body: &body,
        host: &host,
        image: &image,
        log_dir: &log_dir,
        net,
    };
    let made = make(api, &req, &attached).await;
    made.inspect_err(|_| discard(&api.volumes.store, &attached.created))
}

/// A create request, checked.
struct Request<'a> {
    name: &'a str,
    image_name: &'a str,
    body: &'a ContainerCreateBody,
    host: &'a HostConfig,
    image: &'a Image,
    log_dir: &'a std::path::Path,
    net: super::network_mode::NetChoice,
}

/// The pod and its container, with the volumes filled from the image; the container's id.
async fn make(api: &DockerApi, req: &Request<'_>, attached: &Attached) -> Result<String, ApiError> {
    let Request {
        name,
        image_name,
        body,
        host,
        image,
        log_dir,
        ref net,
    } = *req;
    let pod = pod_spec(
        name,
        body,
        host,
        image,
        log_dir,
        attached.points.clone(),
        net.clone(),
    )?;
    let container = container_spec(name, image_name, body, host, attached.mounts.clone())?;
    let single = api
        .runtime
        .create_single(pod, container)
        .await
        .map_err(|e| match e.kind() {
            // Another request took the name meanwhile.
            berth_engine::ErrorKind::AlreadyExists => match super::find(api, &format!("/{name}")) {
                Ok(other) => conflict(name, &other.id),
                Err(_) => from_engine(e),
            },
            _ => from_engine(e),
        })?;
    // The OCI bundle's root, mounted and untouched until the container starts.
    let filled = match api.runtime.container(&single.container_id) {
        Ok(rec) => volumes::attach::copy_up(attached, rec.bundle.join("rootfs")).await,
        Err(e) => Err(from_engine(e)),
    };
    if let Err(e) = filled {
        if let Err(re) = api.runtime.remove_pod(&single.pod_id).await {
            tracing::warn!(pod = %single.pod_id, error = %re, "removing a container whose volumes could not be filled");
        }
        return Err(e);
    }
    Ok(single.container_id)
}

fn conflict(name: &str, id: &str) -> ApiError {
    ApiError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// A generated name that no container has.
fn free_name(api: &DockerApi) -> String {
    let mut retry = 0;
    loop {
        let n = namegen::generate(retry);
        if super::find(api, &format!("/{n}")).is_err() || retry > 20 {
            return n;
        }
        retry += 1;
    }
}

fn docker_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(API_LABEL.to_string(), API_VALUE.to_string())])
}

fn pod_spec(
    name: &str,
    body: &ContainerCreateBody,
    host: &HostConfig,
    image: &Image,
    log_dir: &std::path::Path,
    mounts: Vec<volumes::MountPoint>,
    net: super::network_mode::NetChoice,
) -> Result<PodSpec, ApiError> {
    let network = net.mode.unwrap_or(NamespaceMode::Pod);
    let port_mappings = if network == NamespaceMode::Pod && net.net.join.is_none() {
        ports(body, host, image)?
    } else {
        Vec::new()
    };
    let stored = Stored {
        body: body.clone(),
        image_id: image.id.to_string(),
        log_dir: log_dir.display().to_string(),
        mounts,
    };
    Ok(PodSpec {
        name: name.to_string(),
        namespace: NAMESPACE.to_string(),
        uid: name.to_string(),
        attempt: 0,
        runtime_handler: String::new(),
        hostname: if network == NamespaceMode::Node {
            String::new()
        } else if let Some(h) = net.hostname {
            h
        } else {
            // dockerd's default is the short id, which the engine only picks later; the
            // name is as recognisable, with `_` (not allowed in a hostname) made `-`.
            body.hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| name.replace('_', "-").chars().take(63).collect())
        },
        log_directory: log_dir.display().to_string(),
        labels: docker_labels(),
        annotations: BTreeMap::new(),
        modes: NamespaceModes {
            network,
            pid: NamespaceMode::Container,
            ipc: NamespaceMode::Pod,
        },
        userns: None,
        port_mappings,
        dns: net.dns,
        sysctls: BTreeMap::new(),
        net: net.net,
        cgroup_parent: String::new(),
        config: serde_json::to_value(&stored)
            .map_err(|e| ApiError::internal(format!("encoding the request: {e}")))?,
    })
}

fn container_spec(
    name: &str,
    image_name: &str,
    body: &ContainerCreateBody,
    host: &HostConfig,
    mounts: Vec<Mount>,
) -> Result<ContainerSpec, ApiError> {
    // Docker's rule: an Entrypoint given replaces the image's and drops its Cmd; `[""]`
    // means none. The engine's own rule (Kubernetes') then fills in from the image only
    // what is left empty here.
    let entrypoint: Option<Vec<String>> = body
        .entrypoint
        .clone()
        .map(|e| e.into_iter().filter(|s| !s.is_empty()).collect());
    let cmd = body.cmd.clone().unwrap_or_default();
    let envs = body
        .env
        .iter()
        .flatten()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    let mut labels = docker_labels();
    for (k, v) in body.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let config = ContainerConfig {
        name: name.to_string(),
        attempt: 0,
        image: image_name.to_string(),
        command: entrypoint.clone().unwrap_or_default(),
        args: cmd,
        working_dir: body.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        devices: Vec::new(),
        stdin: body.open_stdin.unwrap_or(false),
        stdin_once: body.stdin_once.unwrap_or(false),
        tty: body.tty.unwrap_or(false),
        resources: resources(host)?,
        security: SecurityContext {
            run_as_username: body.user.clone().unwrap_or_default(),
            ..Default::default()
        },
    };
    if entrypoint.as_ref().is_some_and(|e| e.is_empty()) && config.args.is_empty() {
        return Err(ApiError::bad_request(
            "no command specified: the entrypoint was cleared and no Cmd was given",
        ));
    }
    let mut annotations = BTreeMap::new();
    if let Some(n) = host.pids_limit.filter(|n| *n > 0) {
        annotations.insert(PIDS_LIMIT_ANNOTATION.to_string(), n.to_string());
    }
    Ok(ContainerSpec {
        pod_id: String::new(),
        config,
        labels,
        annotations,
        log_path: LOG_FILE.to_string(),
        pod_privileged: false,
        // Some(..) marks a Docker container: it may run again after it exits.
        restart: Some(super::host_config::restart_policy(host)?),
    })
}
