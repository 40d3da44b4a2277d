//! Start-up reconcile: finish or undo what a crash interrupted.

use berth_core::pod::record::{NamespaceMode, PodState};

use super::Pods;
use super::teardown::release_all;

/// Pods left in Creating are rolled back and forgotten; Ready pods whose namespaces or init
/// are gone (a reboot, a killed init) become NotReady, as containerd does.
pub async fn reconcile(pods: &Pods) {
    for mut rec in pods.store.list() {
        match rec.state {
            PodState::Creating => {
                tracing::info!(pod = %rec.id, name = %rec.name, "cleaning up a pod whose creation was interrupted");
                match release_all(pods, &rec).await {
                    Ok(()) => {
                        if let Err(e) = pods.store.delete(&rec.id) {
                            tracing::warn!(pod = %rec.id, error = %e, "deleting record");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = %rec.id, error = %e, "cleanup incomplete; will retry at next start or on RemovePodSandbox")
                    }
                }
            }
            PodState::Ready => {
                let netns_gone = rec.modes.network == NamespaceMode::Pod
                    && !rec.namespaces.net.as_ref().is_some_and(|p| p.exists());
                let init_dead = rec.namespaces.init_pid.is_some()
                    && !pods.ports.namespaces.init_alive(&rec.namespaces);
                if netns_gone || init_dead {
                    tracing::warn!(pod = %rec.id, netns_gone, init_dead, "pod lost its namespaces or init while berthd was down: now NotReady");
                    if rec.transition(PodState::NotReady).is_ok()
                        && let Err(e) = pods.store.put(&rec)
                    {
                        tracing::warn!(pod = %rec.id, error = %e, "persisting record");
                    }
                }
            }
            PodState::NotReady => {}
        }
    }
}
