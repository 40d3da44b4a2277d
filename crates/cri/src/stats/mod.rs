//! Pod and container statistics as CRI messages: the engine reads the figures (and keeps
//! the samples usage_nano_cores needs); `convert.rs` shapes them, `metrics.rs` turns them
//! into the kubelet's Prometheus-style metrics.

pub mod convert;
pub mod metrics;

use std::collections::HashMap;

use berth_api::cri;
use berth_core::container::record::ContainerRecord;
use berth_core::pod::PodRecord;
pub use berth_engine::stats::{Sample, now_ns};

use crate::Cri;

/// Stats of each container, read concurrently; answers in the order given.
pub async fn containers(cri: &Cri, recs: Vec<ContainerRecord>) -> Vec<cri::ContainerStats> {
    let bundles = &cri.engine.containers.bundles;
    cri.engine
        .container_usage(recs)
        .await
        .into_iter()
        .map(|u| convert::container(&u.record, &u.sample, u.timestamp, u.layer, bundles))
        .collect()
}

/// Stats of each pod with its containers, read concurrently.
pub async fn pods(cri: &Cri, pods: Vec<PodRecord>) -> Vec<cri::PodSandboxStats> {
    let bundles = &cri.engine.containers.bundles;
    cri.engine
        .pod_usage(pods)
        .await
        .into_iter()
        .map(|p| {
            let containers = p
                .containers
                .into_iter()
                .map(|u| convert::container(&u.record, &u.sample, u.timestamp, u.layer, bundles))
                .collect();
            convert::pod(&p.record, &p.sample, p.timestamp, p.network, containers)
        })
        .collect()
}

/// Drops samples of containers and pods that are gone.
pub fn prune(cri: &Cri) {
    cri.engine.prune_samples();
}

/// Whether every label of `selector` is on `labels`.
pub fn labels_match(
    labels: &std::collections::BTreeMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
