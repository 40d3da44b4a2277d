//! cAdvisor-compatible metrics for `ListMetricDescriptors` / `ListPodSandboxMetrics`: the
//! names the kubelet's `/metrics/cadvisor` serves, so a node needs no cAdvisor. Label keys
//! follow CRI-O's (id, name, image; interface for network series). The values come from
//! the same figures as the stats RPCs.

use berth_api::cri::{self, MetricType};

use super::now_ns;

const BASE: &[&str] = &["id", "name", "image"];
const NET: &[&str] = &["id", "name", "image", "interface"];

/// (name, help, counter?, network?)
const TABLE: &[(&str, &str, bool, bool)] = &[
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        true,
        false,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        false,
        false,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        false,
        false,
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        false,
        false,
    ),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures (page faults).",
        true,
        false,
    ),
    (
        "container_memory_major_page_faults_total",
        "Cumulative count of major page faults.",
        true,
        false,
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        false,
        false,
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        false,
        false,
    ),
    (
        "container_fs_inodes_total",
        "Number of inodes used by the container's writable layer.",
        false,
        false,
    ),
    (
        "container_processes",
        "Number of processes running inside the container.",
        false,
        false,
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        true,
        true,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        true,
        true,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving.",
        true,
        true,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting.",
        true,
        true,
    ),
    (
        "container_last_seen",
        "Last time a container was seen by the exporter (seconds since the epoch).",
        false,
        false,
    ),
];

pub fn descriptors() -> Vec<cri::MetricDescriptor> {
    TABLE
        .iter()
        .map(|(name, help, _, net)| cri::MetricDescriptor {
            name: name.to_string(),
            help: help.to_string(),
            label_keys: (if *net { NET } else { BASE })
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })
        .collect()
}

fn kind(name: &str) -> i32 {
    let counter = TABLE.iter().any(|(n, _, c, _)| *n == name && *c);
    if counter {
        MetricType::Counter as i32
    } else {
        MetricType::Gauge as i32
    }
}

fn metric(name: &str, ts: i64, labels: &[&str], value: u64) -> cri::Metric {
    cri::Metric {
        name: name.to_string(),
        timestamp: ts,
        metric_type: kind(name),
        label_values: labels.iter().map(|s| s.to_string()).collect(),
        value: Some(cri::UInt64Value { value }),
    }
}

fn val(v: &Option<cri::UInt64Value>) -> u64 {
    v.as_ref().map(|v| v.value).unwrap_or(0)
}

/// One container's series; `image` is its image reference.
pub fn container(s: &cri::ContainerStats, image: &str) -> cri::ContainerMetrics {
    let attrs = s.attributes.clone().unwrap_or_default();
    let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
    let labels = [attrs.id.as_str(), name.as_str(), image];
    let ts = s.cpu.as_ref().map(|c| c.timestamp).unwrap_or_else(now_ns);
    let cpu = s.cpu.unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let fs = s.writable_layer.clone().unwrap_or_default();
    let mut m = vec![
        metric(
            "container_cpu_usage_seconds_total",
            ts,
            &labels,
            val(&cpu.usage_core_nano_seconds) / 1_000_000_000,
        ),
        metric(
            "container_memory_usage_bytes",
            ts,
            &labels,
            val(&mem.usage_bytes),
        ),
        metric(
            "container_memory_working_set_bytes",
            ts,
            &labels,
            val(&mem.working_set_bytes),
        ),
        metric("container_memory_rss", ts, &labels, val(&mem.rss_bytes)),
        metric(
            "container_memory_failures_total",
            ts,
            &labels,
            val(&mem.page_faults),
        ),
        metric(
            "container_memory_major_page_faults_total",
            ts,
            &labels,
            val(&mem.major_page_faults),
        ),
        metric("container_fs_usage_bytes", ts, &labels, val(&fs.used_bytes)),
        metric(
            "container_fs_inodes_total",
            ts,
            &labels,
            val(&fs.inodes_used),
        ),
        metric(
            "container_last_seen",
            ts,
            &labels,
            (ts / 1_000_000_000) as u64,
        ),
    ];
    if let Some(avail) = &mem.available_bytes {
        let limit = avail.value + val(&mem.working_set_bytes);
        m.push(metric(
            "container_spec_memory_limit_bytes",
            ts,
            &labels,
            limit,
        ));
    }
    cri::ContainerMetrics {
        container_id: attrs.id,
        metrics: m,
    }
}

/// A pod's own series: network per interface and its process count.
pub fn pod(s: &cri::PodSandboxStats) -> Vec<cri::Metric> {
    let attrs = s.attributes.clone().unwrap_or_default();
    let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
    let linux = s.linux.clone().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(net) = &linux.network {
        for i in &net.interfaces {
            let labels = [attrs.id.as_str(), name.as_str(), "", i.name.as_str()];
            let ts = net.timestamp;
            out.push(metric(
                "container_network_receive_bytes_total",
                ts,
                &labels,
                val(&i.rx_bytes),
            ));
            out.push(metric(
                "container_network_transmit_bytes_total",
                ts,
                &labels,
                val(&i.tx_bytes),
            ));
            out.push(metric(
                "container_network_receive_errors_total",
                ts,
                &labels,
                val(&i.rx_errors),
            ));
            out.push(metric(
                "container_network_transmit_errors_total",
                ts,
                &labels,
                val(&i.tx_errors),
            ));
        }
    }
    if let Some(p) = &linux.process {
        let labels = [attrs.id.as_str(), name.as_str(), ""];
        out.push(metric(
            "container_processes",
            p.timestamp,
            &labels,
            val(&p.process_count),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_cover_every_series() {
        let d = descriptors();
        assert!(
            d.iter()
                .any(|d| d.name == "container_memory_working_set_bytes")
        );
        let s = cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: "c1".into(),
                ..Default::default()
            }),
            cpu: Some(cri::CpuUsage {
                timestamp: 5,
                usage_core_nano_seconds: Some(cri::UInt64Value {
                    value: 3_000_000_000,
                }),
                usage_nano_cores: None,
            }),
            ..Default::default()
        };
        let m = container(&s, "busybox");
        for metric in &m.metrics {
            let desc = d.iter().find(|d| d.name == metric.name).unwrap();
            assert_eq!(
                desc.label_keys.len(),
                metric.label_values.len(),
                "{}",
                metric.name
            );
        }
        let cpu = m
            .metrics
            .iter()
            .find(|m| m.name.starts_with("container_cpu"))
            .unwrap();
        assert_eq!(cpu.value.as_ref().unwrap().value, 3);
        assert_eq!(cpu.metric_type, MetricType::Counter as i32);
    }
}
