//! Figures → CRI stats messages. Every message carries its timestamp even when a figure is
//! unknown: the kubelet and critest treat a zero timestamp as "no stats".

use std::path::Path;

use berth_api::cri;
use berth_core::container::record::ContainerRecord;
use berth_core::pod::PodRecord;
use berth_core::stats::{DirUsage, InterfaceUsage};

use super::Sample;
use crate::containers::convert as cconv;
use crate::pods::convert as pconv;

fn v(value: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value })
}

pub fn cpu(s: &Sample) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: s.timestamp,
        usage_core_nano_seconds: v(s.usage.cpu_usage_ns.unwrap_or(0)),
        usage_nano_cores: v(s.nano_cores.unwrap_or(0)),
    }
}

pub fn memory(s: &Sample) -> cri::MemoryUsage {
    let m = s.usage.memory.clone().unwrap_or_default();
    cri::MemoryUsage {
        timestamp: s.timestamp,
        working_set_bytes: v(m.working_set_bytes),
        available_bytes: m.available_bytes().and_then(v),
        usage_bytes: v(m.usage_bytes),
        rss_bytes: v(m.rss_bytes),
        page_faults: v(m.page_faults),
        major_page_faults: v(m.major_page_faults),
    }
}

pub fn container(
    rec: &ContainerRecord,
    s: &Sample,
    timestamp: i64,
    layer: Option<DirUsage>,
    layers_root: &Path,
) -> cri::ContainerStats {
    let layer = layer.unwrap_or_default();
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: rec.id.clone(),
            metadata: Some(cconv::metadata(rec)),
            labels: cconv::unsorted(&rec.labels),
            annotations: cconv::unsorted(&rec.annotations),
        }),
        cpu: Some(cpu(s)),
        memory: Some(memory(s)),
        writable_layer: Some(cri::FilesystemUsage {
            timestamp,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: layers_root.display().to_string(),
            }),
            used_bytes: v(layer.used_bytes),
            inodes_used: v(layer.inodes_used),
        }),
        swap: None,
    }
}

fn interface(i: &InterfaceUsage) -> cri::NetworkInterfaceUsage {
    cri::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: v(i.rx_bytes),
        rx_errors: v(i.rx_errors),
        tx_bytes: v(i.tx_bytes),
        tx_errors: v(i.tx_errors),
    }
}

pub fn pod(
    rec: &PodRecord,
    s: &Sample,
    timestamp: i64,
    network: Option<Vec<InterfaceUsage>>,
    containers: Vec<cri::ContainerStats>,
) -> cri::PodSandboxStats {
    let network = network.map(|ifs| {
        // eth0 is the pod's interface on the built-in bridge and with CNI alike.
        let default = ifs
            .iter()
            .find(|i| i.name == "eth0")
            .or(ifs.first())
            .map(interface);
        cri::NetworkUsage {
            timestamp,
            default_interface: default,
            interfaces: ifs.iter().map(interface).collect(),
        }
    });
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: rec.id.clone(),
            metadata: Some(pconv::metadata(rec)),
            labels: pconv::unsorted(&rec.labels),
            annotations: pconv::unsorted(&rec.annotations),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: Some(cpu(s)),
            memory: Some(memory(s)),
            network: Some(network.unwrap_or(cri::NetworkUsage {
                timestamp,
                ..Default::default()
            })),
            process: Some(cri::ProcessUsage {
                timestamp,
                process_count: v(s.usage.pids.unwrap_or(0)),
            }),
            containers,
        }),
        windows: None,
    }
}
