//! What berthd holds, for its own metrics: pods and containers by state, pod monitors,
//! pulls, and a self-check for leftovers (state dirs no record owns).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_core::container::record::ContainerState;
use berth_core::pod::PodState;

use crate::Engine;

/// Pull totals since start-up.
#[derive(Default)]
pub struct PullCounters {
    pub pulls: AtomicU64,
    pub failures: AtomicU64,
    /// Bytes of the images pulled (compressed content, as the registry served it).
    pub bytes: AtomicU64,
    /// Sum of pull durations, microseconds.
    pub micros: AtomicU64,
}

impl PullCounters {
    pub fn record(&self, ok: Option<u64>, took: Duration) {
        self.pulls.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        match ok {
            Some(bytes) => self.bytes.fetch_add(bytes, Ordering::Relaxed),
            None => self.failures.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Census {
    pub pods: BTreeMap<&'static str, u64>,
    pub containers: BTreeMap<&'static str, u64>,
    /// Pods with a monitor: those with at least one container (the monitor starts with the
    /// first container and ends at RemovePodSandbox).
    pub monitors: u64,
    pub pulls: u64,
    pub pull_failures: u64,
    pub pull_bytes: u64,
    pub pull_seconds: f64,
}

impl Engine {
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        for s in ["ready", "notready"] {
            c.pods.insert(s, 0);
        }
        for s in ["created", "running", "exited", "unknown"] {
            c.containers.insert(s, 0);
        }
        for p in self.pods.store.list() {
            let s = match p.state {
                PodState::Ready => "ready",
                PodState::Creating | PodState::NotReady => "notready",
            };
            *c.pods.entry(s).or_default() += 1;
        }
        let mut with_monitor = HashSet::new();
        for r in self.containers.store.list() {
            let s = match r.state {
                ContainerState::Created => "created",
                ContainerState::Running => "running",
                ContainerState::Exited => "exited",
                ContainerState::Creating => "unknown",
            };
            *c.containers.entry(s).or_default() += 1;
            with_monitor.insert(r.pod_id);
        }
        c.monitors = with_monitor.len() as u64;
        let p = &self.pulls;
        c.pulls = p.pulls.load(Ordering::Relaxed);
        c.pull_failures = p.failures.load(Ordering::Relaxed);
        c.pull_bytes = p.bytes.load(Ordering::Relaxed);
        c.pull_seconds = p.micros.load(Ordering::Relaxed) as f64 / 1e6;
        c
    }

    /// Self-check: state directories that no record owns (pod run dirs, container
    /// bundles). Blocking I/O: call it from a blocking task.
    pub fn leftovers(&self) -> Vec<std::path::PathBuf> {
        let pods: HashSet<String> = self.pods.store.list().into_iter().map(|p| p.id).collect();
        let ctrs: HashSet<String> = self
            .containers
            .store
            .list()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let mut out = Vec::new();
        for (dir, known) in [
            (&self.pods.run_dir, &pods),
            (&self.containers.bundles, &ctrs),
        ] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // Records are written before their dirs are made and removed after: a dir
                // with no record is left over (temp names end in .tmp and are skipped).
                if !known.contains(&name) && !name.ends_with(".tmp") {
                    out.push(e.path());
                }
            }
        }
        out
    }
}
