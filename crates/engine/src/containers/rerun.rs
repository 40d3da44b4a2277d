//! Running an exited container again, as Docker does for `docker start`, `docker restart`
//! and restart policies: the same id, the same stored config, the kept writable layer
//! (the overlay upper dir stays in the bundle) and the same log file (appended to). Only
//! containers with a restart policy may (see `ContainerRecord::restart_policy`); a CRI
//! container runs once.
//!
//! The runtime's part of the old run is released and a new one is created from the
//! bundle's config.json, then started. The caller holds the container's lock.

use berth_core::container::record::{ContainerRecord, ContainerState};

use super::lifecycle::now_ns;
use crate::events::EventKind;
use crate::{Engine, EngineError};

/// Why the container runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A person started it (clears a manual stop, as `docker start` does).
    Manual,
    /// The restart policy (counts in `restart_count`).
    Policy,
    /// berthd started and the policy says it should run.
    DaemonStart,
}

impl Engine {
    /// Creates and starts the runtime container of an exited container again. On failure
    /// the record says Exited with reason StartError, as a failed first start does.
    pub(crate) async fn rerun(
        &self,
        rec: &mut ContainerRecord,
        why: Why,
    ) -> Result<(), EngineError> {
        if rec.state != ContainerState::Exited || rec.restart_policy.is_none() {
            return Err(EngineError::FailedPrecondition(format!(
                "container {} is {:?}: only an exited container with a restart policy runs again",
                rec.id, rec.state
            )));
        }
        if self.pods.ready(&rec.pod_id).is_err() {
            // Its pod lost its namespaces (a reboot) or was stopped: made again in place.
            self.revive_pod(&rec.pod_id).await?;
        }
        let image = self.images.find(&rec.image_id).ok_or_else(|| {
            EngineError::FailedPrecondition(format!(
                "container {}: its image {} ({}) is no longer on this node",
                rec.id, rec.image, rec.image_id
            ))
        })?;
        let c = &self.containers;
        if why == Why::Policy {
            rec.restart_count += 1;
        }
        if why != Why::Policy {
            rec.manually_stopped = false;
        }
        let res = self.recreate(rec, &image.snapshots).await;
        if let Err(e) = res {
            rec.finish(128, now_ns(), false);
            rec.reason = "StartError".into();
            rec.message = e.to_string();
            let _ = c.store.put(rec);
            c.events.container(EventKind::Stopped, rec, &c.store);
            return Err(e);
        }
        c.events.container(EventKind::Started, rec, &c.store);
        self.supervisor.watch(&rec.id);
        Ok(())
    }

    async fn recreate(
        &self,
        rec: &mut ContainerRecord,
        lowers: &[std::path::PathBuf],
    ) -> Result<(), EngineError> {
        let c = &self.containers;
        let rt = &c.ports.runtime;
        // The old run's state, cgroup and pipes go; the bundle and its layer stay.
        rt.delete(&rec.pod_id, &rec.id).await?;
        // Kept when still mounted; mounted again (same upper dir) after a reboot.
        c.ports.rootfs.mount(&rec.bundle, lowers, false).await?;
        rt.create(&super::create_request(rec)).await?;
        rec.transition(ContainerState::Created)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        rec.paused = false;
        c.store.put(rec)?;
        let st = rt.start(&rec.pod_id, &rec.id).await?;
        // As Docker: a running container has no exit code; the last finish time stays.
        rec.started_at = st.started_at.unwrap_or_else(now_ns);
        rec.exit_code = 0;
        rec.reason.clear();
        rec.message.clear();
        rec.transition(ContainerState::Running)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        c.store.put(rec)?;
        Ok(())
    }
}
