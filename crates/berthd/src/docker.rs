//! The Docker Engine API listeners: the unix socket (`[docker] socket`) and, opt-in, TCP
//! with mutual TLS (`[docker.tcp]`, the same TLS code as the streaming server). Also the
//! host facts `/info` and `/version` report, read here so berth-docker stays pure of the OS.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use berth_core::config::Config;
use berth_core::image::ImageStore;
use berth_docker::{DockerApi, EngineInfo, Listener};
use berth_engine::Engine;
use berth_linux::cgroup::CgroupMode;
use berth_stream::TlsSettings;
use futures::future::BoxFuture;
use tokio_rustls::TlsAcceptor;

use crate::listen::unix;

/// Binds the Docker API's listeners now (so start-up fails on a bad socket or certificate)
/// and returns a future that serves them until `shutdown` resolves, then drains them.
pub async fn start<F>(
    cfg: &Config,
    images: Arc<dyn ImageStore>,
    engine: Arc<Engine>,
    shutdown: impl Fn() -> F,
) -> anyhow::Result<BoxFuture<'static, ()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let d = &cfg.docker;
    // Docker containers' logs: one directory per container, removed with it.
    let log_dir = cfg.root_dir.join("docker/logs");
    let files = Arc::new(berth_linux::files::LinuxFiles);
    let api = DockerApi::new(images, engine_info(cfg), engine, log_dir, files);
    let mut servers: Vec<BoxFuture<'static, ()>> = Vec::new();
    let listener = unix::bind(&d.socket, d.socket_mode, &d.socket_group, "docker")?;
    tracing::info!(socket = %d.socket.display(), "serving the Docker API on unix://{}", d.socket.display());
    servers.push(Box::pin(berth_docker::serve(
        api.clone(),
        Listener::Unix(listener),
        shutdown(),
    )));
    if d.tcp.enabled {
        let t = &d.tcp;
        let tls = berth_stream::tls_server_config(&TlsSettings {
            cert: t.tls_cert.clone(),
            key: t.tls_key.clone(),
            client_ca: t.client_ca.clone(),
        })
        .context("docker.tcp TLS settings")?;
        let addr: std::net::SocketAddr = t
            .address
            .parse()
            .with_context(|| format!("docker.tcp.address {:?}", t.address))?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("docker.tcp.address: binding {addr}"))?;
        tracing::info!(%addr, "serving the Docker API on TCP with mutual TLS");
        servers.push(Box::pin(berth_docker::serve(
            api,
            Listener::Tls(tcp, TlsAcceptor::from(tls)),
            shutdown(),
        )));
    }
    Ok(Box::pin(async move {
        futures::future::join_all(servers).await;
    }))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A value of /etc/os-release, unquoted.
fn os_release(key: &str) -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

fn mem_total() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn engine_info(cfg: &Config) -> EngineInfo {
    let hostname = read_trimmed("/proc/sys/kernel/hostname");
    // Stable for this host and root dir, shaped like dockerd's engine id.
    let seed = berth_core::Digest::of(format!("{hostname}\n{}", cfg.root_dir.display()).as_bytes());
    let h = seed.hex();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    let architecture = std::env::consts::ARCH.to_string();
    let arch = match architecture.as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
    .to_string();
    let mut runtimes = vec![(
        "berth".to_string(),
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "berthd".into()),
    )];
    runtimes.extend(
        cfg.runtime
            .oci_runtimes
            .iter()
            .map(|(n, p)| (n.clone(), p.display().to_string())),
    );
    EngineInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        id,
        hostname,
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
        operating_system: os_release("PRETTY_NAME"),
        os_version: os_release("VERSION_ID"),
        architecture,
        arch,
        ncpu: std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1),
        mem_total: mem_total(),
        root_dir: cfg.root_dir.display().to_string(),
        cgroup_driver: cfg.runtime.cgroup_driver.as_str().to_string(),
        cgroup_version: match berth_linux::cgroup::mode() {
            CgroupMode::V2 => 2,
            CgroupMode::V1 => 1,
        },
        runtimes,
    }
}
