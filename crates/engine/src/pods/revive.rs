//! Making a stopped pod ready again in place, for a Docker container that runs again after
//! its pod lost its namespaces (a reboot) or was stopped: same id and record, resources
//! acquired anew (namespaces, cgroup, files, network; the IP may change, as in Docker).
//! Only a pod whose every container has a restart policy (Docker's) is revived; a CRI pod
//! never is: the kubelet makes a new sandbox.

use berth_core::pod::record::{PodNamespaces, PodState};

use crate::events::{EventKind, of_pod};
use crate::pods::run;
use crate::pods::teardown::release_all;
use crate::{Engine, EngineError};

impl Engine {
    /// Readies the stopped pod `pod_id` again. Called with a container's lock held, so the
    /// pod's lock is only tried: a pod being stopped or removed answers Unavailable.
    pub(crate) async fn revive_pod(&self, pod_id: &str) -> Result<(), EngineError> {
        let pods = &self.pods;
        let lock = pods.lock_of(pod_id);
        let Ok(_guard) = lock.try_lock() else {
            return Err(EngineError::Unavailable(format!(
                "pod {pod_id} is busy (being stopped or removed); retry"
            )));
        };
        let mut rec = pods.resolve(pod_id)?;
        match rec.state {
            PodState::Ready => return Ok(()),
            PodState::Creating => {
                return Err(EngineError::Unavailable(format!(
                    "pod {pod_id} is being created; retry"
                )));
            }
            PodState::NotReady => {}
        }
        let containers = of_pod(&rec.id, &self.containers.store);
        if containers.is_empty() || containers.iter().any(|c| c.restart_policy.is_none()) {
            return Err(EngineError::FailedPrecondition(format!(
                "pod sandbox {} is stopped; a Kubernetes pod is not made again: run a new one",
                rec.id
            )));
        }
        tracing::info!(pod = %rec.id, name = %rec.name, "making a stopped pod ready again for its container");
        // What is left of the old pod goes first (every step is idempotent).
        release_all(pods, &rec).await?;
        rec.namespaces = PodNamespaces::default();
        rec.ip = None;
        rec.additional_ips.clear();
        rec.attachments.clear();
        pods.store.put(&rec)?;
        if let Err(e) = run::create(pods, &mut rec).await {
            tracing::warn!(pod = %rec.id, error = %e, "making the pod ready again failed; undoing");
            if let Err(undo) = release_all(pods, &rec).await {
                tracing::error!(pod = %rec.id, error = %undo, "undo incomplete; RemovePodSandbox finishes it");
            }
            let _ = rec.transition(PodState::NotReady);
            pods.store.put(&rec)?;
            return Err(e.into());
        }
        pods.events.pod(EventKind::Started, &rec, || {
            of_pod(&rec.id, &self.containers.store)
        });
        Ok(())
    }
}
