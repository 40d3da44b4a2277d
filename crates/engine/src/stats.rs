//! Pod and container statistics: the node's figures read through the [`StatsReader`] port,
//! the previous sample per container and pod (for usage_nano_cores), and the last known
//! figures of containers whose cgroup is gone (exited). Front doors turn the figures into
//! their own messages (CRI stats, Docker's /stats).
//!
//! Every read runs in its own blocking task, so listing many containers reads them side by
//! side and never holds a lock across I/O or blocks the async workers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::config::CgroupDriver;
use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::container::resources::cgroups_path;
use berth_core::pod::{PodRecord, PodState};
use berth_core::stats::{
    CgroupUsage, DirUsage, InterfaceUsage, StatsReader, nano_cores, writable_layer,
};

use crate::Engine;

/// One sample of a cgroup: when, and what it had used.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub timestamp: i64,
    pub usage: CgroupUsage,
    /// usage_nano_cores against the sample before this one.
    pub nano_cores: Option<u64>,
}

/// The last sample per container or pod id.
#[derive(Default)]
pub struct Samples(Mutex<HashMap<String, Sample>>);

impl Samples {
    /// Records `usage` read at `timestamp` and answers the sample to report: a cgroup that
    /// no longer answers (the container exited) keeps its last known figures.
    pub fn record(&self, id: &str, timestamp: i64, usage: CgroupUsage) -> Sample {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let prev = map.get(id).cloned();
        let Some(cpu) = usage.cpu_usage_ns else {
            return prev.unwrap_or(Sample {
                timestamp,
                usage,
                nano_cores: None,
            });
        };
        let rate = prev
            .as_ref()
            .and_then(|p| Some((p.timestamp, p.usage.cpu_usage_ns?)))
            .and_then(|p| nano_cores(p, (timestamp, cpu)));
        let sample = Sample {
            timestamp,
            usage,
            // Two reads in the same instant: keep the rate already known.
            nano_cores: rate.or(prev.and_then(|p| p.nano_cores)),
        };
        map.insert(id.to_string(), sample.clone());
        sample
    }

    /// Forgets ids that are not in `live` (removed containers and pods).
    pub fn retain(&self, live: &HashSet<String>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| live.contains(id));
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

/// What one blocking read brings back.
struct Raw {
    timestamp: i64,
    cgroup: CgroupUsage,
    layer: Option<DirUsage>,
    network: Option<Vec<InterfaceUsage>>,
}

/// Runs the reads off the async workers. A figure that cannot be read is left out (and
/// logged): stats answer for every container, whatever its state.
async fn read(
    reader: Arc<dyn StatsReader>,
    cgroup: Option<String>,
    layer: Option<std::path::PathBuf>,
    netns: Option<std::path::PathBuf>,
) -> Raw {
    let task = tokio::task::spawn_blocking(move || {
        let cgroup = match cgroup.as_deref().map(|p| reader.cgroup(p)) {
            Some(Ok(u)) => u,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "reading cgroup stats");
                CgroupUsage::default()
            }
            None => CgroupUsage::default(),
        };
        let layer = layer.and_then(|d| {
            reader
                .dir_usage(&d)
                .map_err(|e| tracing::debug!(error = %e, "reading writable layer usage"))
                .ok()
        });
        let network = netns.and_then(|n| {
            reader
                .network(&n)
                .map_err(|e| tracing::debug!(error = %e, "reading network stats"))
                .ok()
        });
        Raw {
            timestamp: now_ns(),
            cgroup,
            layer,
            network,
        }
    });
    task.await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "a stats read failed");
        Raw::empty()
    })
}

impl Raw {
    fn empty() -> Self {
        Raw {
            timestamp: now_ns(),
            cgroup: CgroupUsage::default(),
            layer: None,
            network: None,
        }
    }
}

fn container_cgroup(
    engine: &Engine,
    rec: &ContainerRecord,
    pod: Option<&PodRecord>,
) -> Option<String> {
    let driver = engine.info.config.runtime.cgroup_driver;
    cgroups_path(driver, pod.and_then(|p| p.cgroup.as_deref()), &rec.id)
}

/// The cgroup that holds all of a pod's processes. cgroupfs nests the containers in the
/// pod's own cgroup; systemd puts the pod's scope and its containers' scopes side by side
/// in the pod's slice (the kubelet's cgroup parent), so that slice is read.
fn pod_cgroup(engine: &Engine, pod: &PodRecord) -> Option<String> {
    let own = pod.cgroup.clone()?;
    match engine.info.config.runtime.cgroup_driver {
        CgroupDriver::Cgroupfs => Some(own),
        CgroupDriver::Systemd => own.rsplit_once('/').map(|(slice, _)| slice.to_string()),
    }
}

/// One container's figures.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub record: ContainerRecord,
    pub sample: Sample,
    /// When the figures were read.
    pub timestamp: i64,
    /// The writable layer's usage, when it could be read.
    pub layer: Option<DirUsage>,
}

/// One pod's figures, with its containers'.
#[derive(Debug, Clone)]
pub struct PodUsage {
    pub record: PodRecord,
    pub sample: Sample,
    pub timestamp: i64,
    /// The pod's interfaces, when its network namespace could be read.
    pub network: Option<Vec<InterfaceUsage>>,
    pub containers: Vec<ContainerUsage>,
}

impl Engine {
    /// Figures of each container, read concurrently; answers in the order given.
    pub async fn container_usage(&self, recs: Vec<ContainerRecord>) -> Vec<ContainerUsage> {
        let reader = self.containers.ports.stats.clone();
        let tasks: Vec<_> = recs
            .into_iter()
            .map(|rec| {
                let pod = self.pods.store.get(&rec.pod_id);
                // A container that never ran or has exited has no live cgroup worth reading.
                let cgroup = matches!(rec.state, ContainerState::Created | ContainerState::Running)
                    .then(|| container_cgroup(self, &rec, pod.as_ref()))
                    .flatten();
                let layer = writable_layer(&rec.bundle);
                let raw = tokio::spawn(read(reader.clone(), cgroup, Some(layer), None));
                (rec, raw)
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for (rec, raw) in tasks {
            // One answer per container, whatever happened to its read.
            let raw = raw.await.unwrap_or_else(|_| Raw::empty());
            let sample = self.samples.record(&rec.id, raw.timestamp, raw.cgroup);
            out.push(ContainerUsage {
                record: rec,
                sample,
                timestamp: raw.timestamp,
                layer: raw.layer,
            });
        }
        out
    }

    /// Figures of each pod with its containers, read concurrently.
    pub async fn pod_usage(&self, pods: Vec<PodRecord>) -> Vec<PodUsage> {
        let reader = self.containers.ports.stats.clone();
        let ids: HashSet<&str> = pods.iter().map(|p| p.id.as_str()).collect();
        let mine: Vec<_> = self
            .containers
            .store
            .list()
            .into_iter()
            .filter(|c| ids.contains(c.pod_id.as_str()))
            .collect();
        // Pods' and containers' reads all run side by side.
        let pod_tasks: Vec<_> = pods
            .into_iter()
            .map(|pod| {
                let ready = pod.state == PodState::Ready;
                let cgroup = ready.then(|| pod_cgroup(self, &pod)).flatten();
                let netns = ready.then(|| pod.namespaces.net.clone()).flatten();
                let raw = tokio::spawn(read(reader.clone(), cgroup, None, netns));
                (pod, raw)
            })
            .collect();
        let mut by_pod: HashMap<String, Vec<ContainerUsage>> = HashMap::new();
        for u in self.container_usage(mine).await {
            by_pod.entry(u.record.pod_id.clone()).or_default().push(u);
        }
        let mut out = Vec::with_capacity(pod_tasks.len());
        for (pod, raw) in pod_tasks {
            let Ok(raw) = raw.await else { continue };
            let containers = by_pod.remove(&pod.id).unwrap_or_default();
            let sample = self.samples.record(&pod.id, raw.timestamp, raw.cgroup);
            out.push(PodUsage {
                record: pod,
                sample,
                timestamp: raw.timestamp,
                network: raw.network,
                containers,
            });
        }
        out
    }

    /// The host pids of a container's processes (its cgroup's members), for `docker top`.
    pub async fn container_processes(&self, id: &str) -> Result<Vec<i32>, crate::EngineError> {
        let rec = self.containers.resolve(id)?;
        let pod = self.pods.store.get(&rec.pod_id);
        let Some(cgroup) = container_cgroup(self, &rec, pod.as_ref()) else {
            return Ok(Vec::new());
        };
        let reader = self.containers.ports.stats.clone();
        tokio::task::spawn_blocking(move || reader.cgroup_pids(&cgroup))
            .await
            .map_err(|e| crate::EngineError::Internal(format!("listing processes: {e}")))?
            .map_err(|e| crate::EngineError::Internal(e.to_string()))
    }

    /// The node's cumulative CPU time (ns) and CPUs online, for `docker stats`.
    pub async fn node_cpu(&self) -> Option<(u64, u32)> {
        let reader = self.containers.ports.stats.clone();
        tokio::task::spawn_blocking(move || reader.node_cpu())
            .await
            .ok()?
            .map_err(|e| tracing::debug!(error = %e, "reading the node's cpu time"))
            .ok()
    }

    /// Drops samples of containers and pods that are gone.
    pub fn prune_samples(&self) {
        let live: HashSet<String> = self
            .containers
            .store
            .list()
            .into_iter()
            .map(|c| c.id)
            .chain(self.pods.store.list().into_iter().map(|p| p.id))
            .collect();
        self.samples.retain(&live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(ns: u64) -> CgroupUsage {
        CgroupUsage {
            cpu_usage_ns: Some(ns),
            ..Default::default()
        }
    }

    #[test]
    fn rate_between_samples_and_last_known() {
        let s = Samples::default();
        assert_eq!(s.record("a", 0, cpu(100)).nano_cores, None);
        let b = s.record("a", 1_000_000_000, cpu(500_000_100));
        assert_eq!(b.nano_cores, Some(500_000_000));
        // The cgroup is gone: the last figures stay.
        let c = s.record("a", 2_000_000_000, CgroupUsage::default());
        assert_eq!(c.usage.cpu_usage_ns, Some(500_000_100));
        s.retain(&HashSet::new());
        assert_eq!(
            s.record("a", 3, CgroupUsage::default()).usage.cpu_usage_ns,
            None
        );
    }
}
