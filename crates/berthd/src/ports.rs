//! The real OS edge behind the pod ports: the only place that picks implementations.

use std::sync::Arc;

use anyhow::Context;
use berth_core::config::Config;
use berth_core::pod::ports::Network;
use berth_cri::PodPorts;
use berth_linux::cgroup::{DEFAULT_ROOT, LinuxCgroups};
use berth_linux::net::{BridgeNetwork, CniNetwork};
use berth_linux::ns::LinuxNamespaces;
use berth_linux::podfiles::LinuxPodFiles;

pub fn build(cfg: &Config) -> anyhow::Result<PodPorts> {
    let state_dir = cfg.root_dir.join("network");
    let network: Arc<dyn Network> = if cfg.network.cni_conf_dir.as_os_str().is_empty() {
        Arc::new(BridgeNetwork::new(&cfg.network, state_dir).context("built-in pod network")?)
    } else {
        Arc::new(CniNetwork::new(&cfg.network, state_dir).context("CNI pod network")?)
    };
    let cgroups = LinuxCgroups::new(DEFAULT_ROOT).context("pod cgroups")?;
    tracing::info!(mode = ?cgroups.mode(), driver = cfg.runtime.cgroup_driver.as_str(), "cgroups");
    Ok(PodPorts {
        namespaces: Arc::new(LinuxNamespaces::new()),
        files: Arc::new(LinuxPodFiles::new()),
        cgroups: Arc::new(cgroups),
        network,
    })
}
