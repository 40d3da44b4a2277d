//! `/_ping`, `/version` and `/info`: what clients ask first (the CLI negotiates its API
//! version from `/_ping`'s `Api-Version` header).

use std::collections::HashMap;

use berth_core::container::record::ContainerState;
use bollard_stubs::models::{
    LocalNodeState, PluginsInfo, SwarmInfo, SystemInfo, SystemInfoCgroupDriverEnum,
    SystemInfoCgroupVersionEnum, SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};
use http::{HeaderValue, Method, StatusCode};

use crate::http::{Reply, empty, ok_json, text};
use crate::{API_VERSION, DockerApi, MIN_API_VERSION};

/// Facts about this engine and its host that `/version` and `/info` report; berthd
/// gathers them (this crate reads nothing from the machine itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInfo {
    /// berth's version.
    pub version: String,
    /// A stable id for this daemon (dockerd's `ID`).
    pub id: String,
    pub hostname: String,
    pub kernel_version: String,
    /// `PRETTY_NAME` of os-release.
    pub operating_system: String,
    pub os_version: String,
    /// `uname -m`: `x86_64`, `aarch64`.
    pub architecture: String,
    /// Go's name for the architecture: `amd64`, `arm64`.
    pub arch: String,
    pub ncpu: i64,
    pub mem_total: i64,
    /// berth's root dir.
    pub root_dir: String,
    /// `cgroupfs` or `systemd`.
    pub cgroup_driver: String,
    /// 1 or 2.
    pub cgroup_version: u8,
    /// OCI runtimes by handler name → binary path; the default one is `berth`.
    pub runtimes: Vec<(String, String)>,
}

/// Headers every dockerd response carries; `/_ping`'s are what the CLI negotiates with.
pub fn add_server_headers(engine: &EngineInfo, headers: &mut http::HeaderMap) {
    let server = format!("Docker/{} (linux)", engine.version);
    if let Ok(v) = HeaderValue::from_str(&server) {
        headers.insert(http::header::SERVER, v);
    }
    headers.insert("Api-Version", HeaderValue::from_static("1.41"));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert("Ostype", HeaderValue::from_static("linux"));
}

pub fn ping(method: &Method) -> Reply {
    let mut resp = if method == Method::HEAD {
        let mut r = http::Response::new(empty());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        r
    } else {
        text(StatusCode::OK, "OK")
    };
    let h = resp.headers_mut();
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    // The classic builder (`POST /build`): the CLIs build through it, not BuildKit.
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    resp
}

pub fn version(api: &DockerApi) -> Reply {
    let e = &api.engine;
    let details: HashMap<String, String> = [
        ("ApiVersion", API_VERSION.to_string()),
        ("MinAPIVersion", MIN_API_VERSION.to_string()),
        ("GitCommit", String::new()),
        ("Os", "linux".to_string()),
        ("Arch", e.arch.clone()),
        ("KernelVersion", e.kernel_version.clone()),
        ("Experimental", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ok_json(&SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "berth".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: e.version.clone(),
            details: Some(details),
        }]),
        version: Some(e.version.clone()),
        api_version: Some(API_VERSION.to_string()),
        min_api_version: Some(MIN_API_VERSION.to_string()),
        git_commit: Some(String::new()),
        go_version: Some(String::new()),
        os: Some("linux".into()),
        arch: Some(e.arch.clone()),
        kernel_version: Some(e.kernel_version.clone()),
        experimental: Some(false),
        build_time: None,
    })
}

pub fn info(api: &DockerApi) -> Reply {
    let e = &api.engine;
    let images = api.images.list();
    // The records as stored: an exit not yet noticed counts as running until a list syncs.
    let recs: Vec<_> = api
        .runtime
        .containers
        .store
        .list()
        .into_iter()
        .filter(crate::containers::is_docker)
        .collect();
    let count = |s: ContainerState| recs.iter().filter(|r| r.state == s).count() as i64;
    ok_json(&SystemInfo {
        id: Some(e.id.clone()),
        containers: Some(recs.len() as i64),
        containers_running: Some(count(ContainerState::Running)),
        containers_paused: Some(0),
        containers_stopped: Some(count(ContainerState::Exited)),
        images: Some(images.len() as i64),
        driver: Some("overlay2".into()),
        driver_status: Some(vec![
            vec!["Backing Filesystem".into(), "extfs".into()],
            vec!["Supports d_type".into(), "true".into()],
        ]),
        docker_root_dir: Some(e.root_dir.clone()),
        plugins: Some(PluginsInfo {
            volume: Some(vec![]),
            network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
            authorization: None,
            log: Some(vec![]),
        }),
        memory_limit: Some(true),
        swap_limit: Some(true),
        cpu_cfs_period: Some(true),
        cpu_cfs_quota: Some(true),
        cpu_shares: Some(true),
        cpu_set: Some(true),
        pids_limit: Some(true),
        ipv4_forwarding: Some(true),
        debug: Some(false),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(match e.cgroup_driver.as_str() {
            "systemd" => SystemInfoCgroupDriverEnum::SYSTEMD,
            _ => SystemInfoCgroupDriverEnum::CGROUPFS,
        }),
        cgroup_version: Some(match e.cgroup_version {
            2 => SystemInfoCgroupVersionEnum::_2,
            _ => SystemInfoCgroupVersionEnum::_1,
        }),
        kernel_version: Some(e.kernel_version.clone()),
        operating_system: Some(e.operating_system.clone()),
        os_version: Some(e.os_version.clone()),
        os_type: Some("linux".into()),
        architecture: Some(e.architecture.clone()),
        ncpu: Some(e.ncpu),
        mem_total: Some(e.mem_total),
        index_server_address: Some("https://index.docker.io/v1/".into()),
        name: Some(e.hostname.clone()),
        labels: Some(vec![]),
        experimental_build: Some(false),
        server_version: Some(e.version.clone()),
        runtimes: Some(
            e.runtimes
                .iter()
                .map(|(name, path)| {
                    let rt = bollard_stubs::models::Runtime {
                        path: Some(path.clone()),
                        ..Default::default()
                    };
                    (name.clone(), rt)
                })
                .collect(),
        ),
        default_runtime: Some("berth".into()),
        swarm: Some(SwarmInfo {
            local_node_state: Some(LocalNodeState::INACTIVE),
            control_available: Some(false),
            ..Default::default()
        }),
        live_restore_enabled: Some(true),
        security_options: Some(vec!["name=seccomp,profile=default".into()]),
        warnings: Some(vec![]),
        ..Default::default()
    })
}
