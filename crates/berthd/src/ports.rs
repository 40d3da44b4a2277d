//! The real OS edge behind the pod ports: the only place that picks implementations.

use std::sync::Arc;

use anyhow::Context;
use berth_core::config::Config;
use berth_core::container::CgroupVersion;
use berth_core::pod::ports::Network;
use berth_core::runtime::ContainerRuntime;
use berth_engine::{ContainerPorts, PodPorts};
use berth_linux::cgroup::{CgroupMode, DEFAULT_ROOT, LinuxCgroups};
use berth_linux::containers::LinuxContainerRuntime;
use berth_linux::net::{BridgeNetwork, CniNetwork};
use berth_linux::ns::LinuxNamespaces;
use berth_linux::podfiles::LinuxPodFiles;
use berth_linux::portforward::NetnsPortForwarder;
use berth_linux::rootfs::OverlayRootfs;
use berth_stream::{StreamServer, TlsSettings};

/// The pod ports, and the built-in network again (None in CNI mode) for what berthd does
/// with it at shutdown.
pub fn build(cfg: &Config) -> anyhow::Result<(PodPorts, Option<Arc<BridgeNetwork>>)> {
    let state_dir = cfg.root_dir.join("network");
    let bridge = bridge_network(cfg)?;
    let network: Arc<dyn Network> = match &bridge {
        Some(b) => b.clone(),
        None => Arc::new(CniNetwork::new(&cfg.network, state_dir).context("CNI pod network")?),
    };
    let cgroups = LinuxCgroups::new(DEFAULT_ROOT).context("pod cgroups")?;
    // Pod inits run as the small `berth-monitor` when installed beside berthd (see below).
    let namespaces = match small_exe() {
        Some(small) => LinuxNamespaces::with_init_exe(small),
        None => LinuxNamespaces::new(),
    };
    tracing::info!(mode = ?cgroups.mode(), driver = cfg.runtime.cgroup_driver.as_str(), "cgroups");
    let ports = PodPorts {
        namespaces: Arc::new(namespaces),
        files: Arc::new(LinuxPodFiles::new()),
        cgroups: Arc::new(cgroups),
        network,
    };
    Ok((ports, bridge))
}

/// The built-in bridge network, unless the config selects CNI.
pub fn bridge_network(cfg: &Config) -> anyhow::Result<Option<Arc<BridgeNetwork>>> {
    if !cfg.network.cni_conf_dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let net = BridgeNetwork::new(&cfg.network, cfg.root_dir.join("network"))
        .context("built-in pod network")?;
    Ok(Some(Arc::new(net)))
}

/// The container ports, with the streaming server (Exec/Attach/PortForward sessions) that
/// serves them already listening.
pub async fn containers(cfg: &Config) -> anyhow::Result<(ContainerPorts, Arc<StreamServer>)> {
    // Monitors and container inits are berthd itself, re-executed.
    let exe = std::env::current_exe().context("locating the berthd binary")?;
    let cgroup_version = match berth_linux::cgroup::mode() {
        CgroupMode::V2 => CgroupVersion::V2,
        CgroupMode::V1 => CgroupVersion::V1,
    };
    let monitor_exe = small_exe().unwrap_or_else(|| exe.clone());
    tracing::info!(monitor = %monitor_exe.display(), "pod monitors");
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(
        LinuxContainerRuntime::new(cfg.run_dir.clone(), exe)
            .with_monitor_exe(monitor_exe)
            .with_oci_runtimes(cfg.runtime.oci_runtimes.clone()),
    );
    // The streaming server uses the CRI listener's TLS settings when TCP is on: the
    // sessions then cross the network too.
    let tcp = &cfg.grpc.tcp;
    let tls = tcp.enabled.then(|| TlsSettings {
        cert: tcp.tls_cert.clone(),
        key: tcp.tls_key.clone(),
        client_ca: tcp.client_ca.clone(),
    });
    let streams = StreamServer::start(
        &cfg.streaming,
        tls,
        runtime.clone(),
        Arc::new(NetnsPortForwarder::new()),
    )
    .await
    .context("starting the streaming server ([streaming] address)")?;
    tracing::info!(address = %streams.local_addr(), "streaming server (exec, attach, port-forward)");
    let ports = ContainerPorts {
        runtime,
        rootfs: Arc::new(OverlayRootfs::new()),
        streams: streams.clone(),
        cgroup_version,
        stats: Arc::new(
            berth_linux::stats::LinuxStats::new(DEFAULT_ROOT).context("stats reader (cgroups)")?,
        ),
    };
    Ok((ports, streams))
}

/// `berth-monitor` beside berthd, when installed: the pod monitor and pod init entry points
/// in a binary without the daemon's code, whose smaller relocated image costs less memory in
/// every pod (measured: 0.70 vs 1.18 MB PSS per monitor).
fn small_exe() -> Option<std::path::PathBuf> {
    let small = std::env::current_exe()
        .ok()?
        .with_file_name("berth-monitor");
    small.is_file().then_some(small)
}
