//! Stopping a pod (its containers stop, it leaves the network, the record stays NotReady)
//! and removing it (everything it holds is released and the record forgotten). Both are
//! idempotent: an unknown pod is success, since all its resources are already reclaimed.

use berth_core::pod::record::PodState;

use crate::containers::lifecycle;
use crate::events::{EventKind, of_pod};
use crate::pods::teardown::{release_all, stop_network};
use crate::{Engine, EngineError};

impl Engine {
    /// Stops every container of the pod (forcibly, as containerd does) and disconnects it.
    pub async fn stop_pod(&self, id: &str) -> Result<(), EngineError> {
        let pods = &self.pods;
        let Some((_lock, mut rec)) = pods.locked(id).await? else {
            return Ok(());
        };
        lifecycle::stop_pod_containers(&self.containers, &rec.id).await?;
        stop_network(pods, &rec).await?;
        if rec.state != PodState::NotReady {
            rec.transition(PodState::NotReady)
                .map_err(|e| EngineError::FailedPrecondition(e.to_string()))?;
            pods.store.put(&rec)?;
            let store = &self.containers.store;
            pods.events
                .pod(EventKind::Stopped, &rec, || of_pod(&rec.id, store));
        }
        Ok(())
    }

    /// Removes every container of the pod, ends its monitor, releases what the pod holds
    /// and forgets it.
    pub async fn remove_pod(&self, id: &str) -> Result<(), EngineError> {
        let pods = &self.pods;
        let Some((lock, rec)) = pods.locked(id).await? else {
            return Ok(());
        };
        lifecycle::remove_pod_containers(&self.containers, &rec.id).await?;
        release_all(pods, &rec).await?;
        pods.store.delete(&rec.id)?;
        pods.events.pod(EventKind::Deleted, &rec, Vec::new);
        drop(lock);
        pods.forget_lock(&rec.id);
        Ok(())
    }
}
