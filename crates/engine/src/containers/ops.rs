//! What a front door asks of an existing container. Each names it by full id or unique
//! prefix, takes the container's lock and re-reads the record under it, then runs the step.
//! Stop and remove are idempotent: an unknown container is success (the kubelet retries
//! them, and a container that is gone is stopped).

use std::time::Duration;

use futures::StreamExt as _;

use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::container::{CgroupCaps, Resources};

use super::lifecycle::{self, now_ns};
use super::rerun::Why;
use crate::events::EventKind;
use crate::{Containers, Engine, EngineError};

/// Containers whose state is asked of their monitors at once. Each answer is a round trip
/// to another process; one after the other, 100 running containers cost the kubelet's
/// relist (every second) 50 ms.
const CONCURRENT_REFRESHES: usize = 32;

impl Engine {
    /// The container's record as stored (no runtime query).
    pub fn container(&self, id: &str) -> Result<ContainerRecord, EngineError> {
        self.containers.resolve(id)
    }

    /// The container's record, synced with the runtime first (an exit is noticed here).
    pub async fn container_status(&self, id: &str) -> Result<ContainerRecord, EngineError> {
        let c = &self.containers;
        let rec = c.resolve(id)?;
        Ok(synced(c, rec).await)
    }

    /// Every container, oldest first, with states synced with the runtime.
    pub async fn list_containers(&self) -> Vec<ContainerRecord> {
        let c = &self.containers;
        // States must be current for a state filter to mean anything.
        futures::stream::iter(c.store.list())
            .map(|rec| synced(c, rec))
            .buffered(CONCURRENT_REFRESHES)
            .collect()
            .await
    }

    /// Lets a created container exec its program. A CRI container starts only once; one
    /// with a restart policy (Docker's) that exited runs again, keeping its writable layer
    /// and log, and a manual stop no longer holds its policy back.
    pub async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let rec = c.resolve(id)?;
        let _lock = c.lock_of(&rec.id).lock_owned().await;
        let mut rec = c
            .store
            .get(&rec.id)
            .ok_or_else(|| EngineError::NotFound(format!("container {id:?} not found")))?;
        if rec.restart_policy.is_some() {
            self.supervisor.reset(&rec.id);
            if rec.state == ContainerState::Exited {
                return self.rerun(&mut rec, Why::Manual).await;
            }
            if rec.manually_stopped {
                rec.manually_stopped = false;
                c.store.put(&rec)?;
            }
        }
        if rec.state != ContainerState::Created {
            let why = match (rec.paused, rec.restart_policy) {
                (true, _) => "is paused: unpause it instead",
                (false, Some(_)) => "is already running",
                (false, None) => "is not created: it can be started only once",
            };
            return Err(EngineError::FailedPrecondition(format!(
                "container {} {why}",
                rec.id
            )));
        }
        match c.ports.runtime.start(&rec.pod_id, &rec.id).await {
            Ok(st) => {
                rec.started_at = st.started_at.unwrap_or_else(now_ns);
                rec.transition(ContainerState::Running)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                c.store.put(&rec)?;
                c.events.container(EventKind::Started, &rec, &c.store);
                if rec.restart_policy.is_some() {
                    self.supervisor.watch(&rec.id);
                }
                Ok(())
            }
            Err(e) => {
                // The program could not be exec'd: the container is over, as with runc.
                rec.finish(128, now_ns(), false);
                rec.reason = "StartError".into();
                rec.message = e.to_string();
                let _ = c.store.put(&rec);
                c.events.container(EventKind::Stopped, &rec, &c.store);
                Err(e.into())
            }
        }
    }

    /// The container's stop signal, then SIGKILL after `timeout` (at once when zero).
    pub async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), EngineError> {
        let c = &self.containers;
        let Some(rec) = c.store.resolve(id)? else {
            tracing::debug!(container = %id, "stop: no such container; nothing to stop");
            return Ok(());
        };
        let _lock = c.lock_of(&rec.id).lock_owned().await;
        let Some(mut rec) = c.store.get(&rec.id) else {
            return Ok(());
        };
        self.hold_policy(&mut rec)?;
        lifecycle::stop(c, &mut rec, timeout).await?;
        Ok(())
    }

    /// Stops the container if needed, then removes its rootfs, runtime state and record.
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let Some(rec) = c.store.resolve(id)? else {
            return Ok(());
        };
        let lock = c.lock_of(&rec.id).lock_owned().await;
        let Some(mut rec) = c.store.get(&rec.id) else {
            return Ok(());
        };
        lifecycle::remove(c, &mut rec).await?;
        drop(lock);
        Ok(())
    }

    /// New limits, applied live to a created or running container and recorded.
    pub async fn update_resources(&self, id: &str, wanted: Resources) -> Result<(), EngineError> {
        let c = &self.containers;
        let rec = c.resolve(id)?;
        let _lock = c.lock_of(&rec.id).lock_owned().await;
        let mut rec = c
            .store
            .get(&rec.id)
            .ok_or_else(|| EngineError::NotFound(format!("container {id:?} not found")))?;
        let oci = berth_core::container::resources::resources(
            &wanted,
            CgroupCaps {
                version: c.ports.cgroup_version,
                swap: true,
                hugetlb: true,
            },
            None,
            Vec::new(),
        )
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        if matches!(rec.state, ContainerState::Created | ContainerState::Running) {
            let json =
                serde_json::to_value(&oci).map_err(|e| EngineError::Internal(e.to_string()))?;
            c.ports.runtime.update(&rec.pod_id, &rec.id, &json).await?;
        }
        rec.config.resources = wanted;
        c.store.put(&rec)?;
        Ok(())
    }

    /// Starts a new log file (the old one was rotated away).
    pub async fn reopen_log(&self, id: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let rec = c.resolve(id)?;
        if rec.state != ContainerState::Running {
            return Err(EngineError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        c.ports.runtime.reopen_log(&rec.pod_id, &rec.id).await?;
        Ok(())
    }

    /// The pid of a container's process while it runs (to share its namespaces).
    pub async fn container_pid(&self, id: &str) -> Option<i32> {
        let rec = self.containers.store.resolve(id).ok()??;
        self.containers
            .ports
            .runtime
            .state(&rec.pod_id, &rec.id)
            .await
            .ok()?
            .pid
    }
}

/// `rec` brought up to date with the runtime, under the container's lock and from the
/// stored record as it is then. A request that holds the lock (a start, a stop, a run
/// again) records its own transitions: the record is answered as stored. Refreshing a
/// copy read before such a request wrote its own would write the stale copy back over it
/// (a fast-exiting container run again lost its new start time that way).
async fn synced(c: &Containers, rec: ContainerRecord) -> ContainerRecord {
    let lock = c.lock_of(&rec.id);
    let Ok(_guard) = lock.try_lock() else {
        return c.store.get(&rec.id).unwrap_or(rec);
    };
    let Some(mut rec) = c.store.get(&rec.id) else {
        return rec;
    };
    if let Err(e) = lifecycle::refresh(c, &mut rec).await {
        tracing::warn!(container = %rec.id, error = %e, "could not reach the container's monitor");
    }
    rec
}
