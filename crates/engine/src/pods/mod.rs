//! Pod sandboxes: the record store, per-pod locks, the side-effect ports, recovery.
//! Running a pod is `run.rs`; stopping and removing it `stop.rs`.

mod connect;
pub mod recovery;
mod revive;
pub mod run;
pub mod stop;
pub mod teardown;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_core::pod::PodRecord;
use berth_core::pod::ports::{Cgroups, Namespaces, Network, PodFiles};

use crate::EngineError;

pub use crate::records::PodStore;

/// The OS edge as the pod lifecycle sees it.
#[derive(Clone)]
pub struct PodPorts {
    pub namespaces: Arc<dyn Namespaces>,
    pub files: Arc<dyn PodFiles>,
    pub cgroups: Arc<dyn Cgroups>,
    pub network: Arc<dyn Network>,
}

pub struct Pods {
    pub store: Arc<PodStore>,
    pub ports: PodPorts,
    /// Where per-pod volatile state lives: `<run_dir>/pods/<id>`.
    pub run_dir: PathBuf,
    /// Serialises name reservation (held only briefly).
    pub names: tokio::sync::Mutex<()>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Test hook (`BERTHD_FAULT_INJECT=<step>`): fail running a pod right after that step.
    pub fault_inject: Option<String>,
    /// Size of each pod's private /dev/shm.
    pub shm_size: u64,
    /// Pods whose creation answer never reached the client.
    pub undelivered: crate::delivery::Undelivered,
    /// Lifecycle events (shared with the containers).
    pub events: Arc<crate::events::Events>,
}

impl Pods {
    pub fn new(
        store: PodStore,
        ports: PodPorts,
        run_dir: PathBuf,
        shm_size: u64,
        fault_inject: Option<String>,
    ) -> Self {
        let store = Arc::new(store);
        let events = Arc::new(crate::events::Events::new(store.clone()));
        Self {
            store,
            ports,
            run_dir,
            names: tokio::sync::Mutex::new(()),
            locks: Mutex::new(HashMap::new()),
            fault_inject,
            shm_size,
            undelivered: Default::default(),
            events,
        }
    }

    /// The lock that serialises every operation on one pod.
    pub fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// For Stop/Remove: the pod named by `id` (full or unique prefix), locked and re-read
    /// under the lock; None when it does not exist (both are idempotent).
    pub async fn locked(
        &self,
        id: &str,
    ) -> Result<Option<(tokio::sync::OwnedMutexGuard<()>, PodRecord)>, EngineError> {
        let Some(rec) = self.store.resolve(id)? else {
            return Ok(None);
        };
        let lock = self.lock_of(&rec.id).lock_owned().await;
        Ok(self.store.get(&rec.id).map(|r| (lock, r)))
    }

    /// Forgets the lock of a removed pod.
    pub fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    /// The pod named by `id` (full id or unique prefix), or NotFound.
    pub fn resolve(&self, id: &str) -> Result<PodRecord, EngineError> {
        self.store
            .resolve(id)?
            .ok_or_else(|| EngineError::NotFound(format!("pod sandbox {id:?} not found")))
    }

    /// The pod named by `id`, which must be ready for new containers.
    pub fn ready(&self, id: &str) -> Result<PodRecord, EngineError> {
        let pod = self.resolve(id)?;
        if pod.state != berth_core::pod::PodState::Ready {
            return Err(EngineError::FailedPrecondition(format!(
                "pod sandbox {} is not ready (stopped or being created)",
                pod.id
            )));
        }
        Ok(pod)
    }

    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.run_dir.join(id)
    }

    pub fn pin_dir(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("ns")
    }
}

impl crate::Engine {
    /// The pod named by `id` (full id or unique prefix), or NotFound.
    pub fn pod(&self, id: &str) -> Result<PodRecord, EngineError> {
        self.pods.resolve(id)
    }

    /// Every pod, oldest first.
    pub fn list_pods(&self) -> Vec<PodRecord> {
        self.pods.store.list()
    }

    /// `f` of every pod record, oldest first, without copying the records: a pod record
    /// carries its whole config, and the kubelet lists every second.
    pub fn select_pods<U>(&self, f: impl FnMut(&PodRecord) -> Option<U>) -> Vec<U> {
        self.pods.store.select(f)
    }
}
