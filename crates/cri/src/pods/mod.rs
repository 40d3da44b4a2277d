//! Pod sandboxes: the record store, per-pod locks, the side-effect ports, recovery.
//! The RPCs themselves are in `rpc/*_pod_sandbox.rs`.

pub mod convert;
pub mod recovery;
pub mod teardown;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_core::pod::ports::{Cgroups, Namespaces, Network, PodFiles};

pub use crate::records::PodStore;

/// The OS edge as the pod RPCs see it.
#[derive(Clone)]
pub struct PodPorts {
    pub namespaces: Arc<dyn Namespaces>,
    pub files: Arc<dyn PodFiles>,
    pub cgroups: Arc<dyn Cgroups>,
    pub network: Arc<dyn Network>,
}

pub struct Pods {
    pub store: PodStore,
    pub ports: PodPorts,
    /// Where per-pod volatile state lives: `<run_dir>/pods/<id>`.
    pub run_dir: PathBuf,
    /// Serialises name reservation (held only briefly).
    pub names: tokio::sync::Mutex<()>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Test hook (`BERTHD_FAULT_INJECT=<step>`): fail RunPodSandbox right after that step.
    pub fault_inject: Option<String>,
    /// Size of each pod's private /dev/shm.
    pub shm_size: u64,
}

impl Pods {
    pub fn new(
        store: PodStore,
        ports: PodPorts,
        run_dir: PathBuf,
        shm_size: u64,
        fault_inject: Option<String>,
    ) -> Self {
        Self {
            store,
            ports,
            run_dir,
            names: tokio::sync::Mutex::new(()),
            locks: Mutex::new(HashMap::new()),
            fault_inject,
            shm_size,
        }
    }

    /// The lock that serialises every operation on one pod.
    pub fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Forgets the lock of a removed pod.
    pub fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.run_dir.join(id)
    }

    pub fn pin_dir(&self, id: &str) -> PathBuf {
        self.pod_dir(id).join("ns")
    }
}
