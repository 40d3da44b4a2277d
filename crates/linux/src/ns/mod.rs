//! Pod namespaces: created on throwaway threads, pinned by bind mounts under the pod's pin
//! dir, plus the pod's init process when the PID namespace is shared.

pub mod init;
pub mod mountinfo;
mod pin;
mod reaper;
mod sysctl;
mod userns;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::pod::ports::{NamespaceRequest, Namespaces, PodError};
use berth_core::pod::record::PodNamespaces;
use berth_core::pod::sysctl::SysctlNs;

pub use pin::unmount_all;

/// The real [`Namespaces`] port.
#[derive(Debug, Clone)]
pub struct LinuxNamespaces {
    init_exe: PathBuf,
    /// Per init PID: signalled once the pod init (berthd's child) has been reaped, so
    /// `remove` returns only when no process of the pod is left (not even a zombie).
    reapers: Arc<Mutex<HashMap<i32, Receiver<()>>>>,
    /// Reaps those parents: one task for all pods.
    reaper: Arc<reaper::Reaper>,
}

impl Default for LinuxNamespaces {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxNamespaces {
    /// Pod inits run `/proc/self/exe pod-init`: berthd itself (see [`init::pod_init_main`]).
    pub fn new() -> Self {
        Self::with_init_exe("/proc/self/exe")
    }

    /// Pod inits run `<exe> pod-init`; `exe` must call [`init::pod_init_main`] for it.
    pub fn with_init_exe(exe: impl Into<PathBuf>) -> Self {
        Self {
            init_exe: exe.into(),
            reapers: Arc::default(),
            reaper: Arc::default(),
        }
    }

    /// [`Namespaces::remove`] for callers without a runtime (shutdown paths, test guards).
    /// Namespace-neutral: any thread may call it.
    pub fn remove_blocking(&self, ns: &PodNamespaces, pin_dir: &Path) -> Result<(), PodError> {
        pin::remove(ns, pin_dir)?;
        let reaped = ns.init_pid.and_then(|pid| match self.reapers.lock() {
            Ok(mut map) => map.remove(&pid),
            Err(poisoned) => poisoned.into_inner().remove(&pid),
        });
        if let Some(reaped) = reaped {
            // The init is dead (pin::remove killed it); the reaper task reaps it at once.
            let _ = reaped.recv_timeout(Duration::from_secs(5));
        }
        Ok(())
    }
}

/// Runs `f` on a new OS thread that exits when `f` returns, so namespace changes made by
/// the thread (unshare, setns) never leak into a pool (tokio's or anyone's). If the caller
/// went away (its future was dropped), a successful result is handed to `unwanted` to undo.
async fn on_own_thread<T, F, U>(what: &'static str, f: F, unwanted: U) -> Result<T, PodError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PodError> + Send + 'static,
    U: FnOnce(T) + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("berth-{what}"))
        .spawn(move || {
            if let Err(Ok(value)) = tx.send(f()) {
                unwanted(value);
            }
        })
        .map_err(|e| PodError::failed(what, format!("starting a thread: {e}")))?;
    rx.await
        .map_err(|_| PodError::failed(what, "the worker thread panicked"))?
}

#[async_trait]
impl Namespaces for LinuxNamespaces {
    async fn create(&self, req: &NamespaceRequest) -> Result<PodNamespaces, PodError> {
        let req = req.clone();
        let exe = self.init_exe.clone();
        let pin_dir = req.pin_dir.clone();
        let undo = move |(ns, child): (PodNamespaces, Option<std::process::Child>)| {
            if let Err(e) = pin::remove(&ns, &pin_dir) {
                tracing::warn!(error = %e, "undoing the namespaces of a cancelled pod creation");
            }
            if let Some(mut child) = child {
                let _ = child.wait();
            }
        };
        let (ns, child) = on_own_thread("pod-ns", move || pin::create(&req, &exe), undo).await?;
        if let (Some(child), Some(pid)) = (child, ns.init_pid) {
            // The init is berthd's child: reap it when it exits, on the one reaper task
            // shared by all pods.
            let (done, reaped) = channel();
            match self.reaper.watch(child, done) {
                Ok(()) => match self.reapers.lock() {
                    Ok(mut map) => map.insert(pid, reaped),
                    Err(poisoned) => poisoned.into_inner().insert(pid, reaped),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch a pod init (pidfd_open); once it exits it stays a zombie until berthd exits");
                    None
                }
            };
        }
        Ok(ns)
    }

    async fn apply_sysctls(
        &self,
        ns: &PodNamespaces,
        sysctls: &[(String, SysctlNs, String)],
    ) -> Result<(), PodError> {
        if sysctls.is_empty() {
            return Ok(());
        }
        let ns = ns.clone();
        let sysctls = sysctls.to_vec();
        on_own_thread("pod-sysctl", move || sysctl::apply(&ns, &sysctls), |_| {}).await
    }

    async fn remove(&self, ns: &PodNamespaces, pin_dir: &Path) -> Result<(), PodError> {
        let me = self.clone();
        let ns = ns.clone();
        let pin_dir = pin_dir.to_path_buf();
        tokio::task::spawn_blocking(move || me.remove_blocking(&ns, &pin_dir))
            .await
            .map_err(|e| PodError::failed("remove pod namespaces", e))?
    }

    fn init_alive(&self, ns: &PodNamespaces) -> bool {
        match (ns.init_pid, ns.init_start_time) {
            (Some(pid), Some(start)) => init::alive(pid, start),
            _ => true,
        }
    }
}
