//! What Docker asks of a container beyond CRI's create/start/stop/remove: restart, kill
//! with a signal, pause and unpause, rename. Each takes the container's lock and re-reads
//! the record under it, like the operations in `ops.rs`.

use std::time::Duration;

use berth_core::container::record::{ContainerRecord, ContainerState, container_name_key};
use berth_core::container::restart::RestartPolicy;
use berth_core::pod::record::name_key as pod_name_key;

use super::lifecycle::{self, SIGKILL, SIGTERM, parse_signal};
use super::rerun::Why;
use crate::{Engine, EngineError};

/// How long a SIGKILLed container may take to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

fn not_running(rec: &ContainerRecord) -> EngineError {
    EngineError::FailedPrecondition(format!("container {} is not running", rec.id))
}

impl Engine {
    /// The container under its lock, synced with the runtime.
    async fn locked(
        &self,
        id: &str,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, ContainerRecord), EngineError> {
        let c = &self.containers;
        let rec = c.resolve(id)?;
        let lock = c.lock_of(&rec.id).lock_owned().await;
        let mut rec = c
            .store
            .get(&rec.id)
            .ok_or_else(|| EngineError::NotFound(format!("container {id:?} not found")))?;
        lifecycle::refresh(c, &mut rec).await?;
        Ok((lock, rec))
    }

    /// A person stops it: its restart policy holds off until it is started again.
    pub(crate) fn hold_policy(&self, rec: &mut ContainerRecord) -> Result<(), EngineError> {
        // Exited too: a restart the policy scheduled (the back-off) is called off.
        if rec.restart_policy.is_some()
            && !rec.manually_stopped
            && rec.state != ContainerState::Creating
        {
            rec.manually_stopped = true;
            self.containers.store.put(rec)?;
        }
        Ok(())
    }

    /// `docker restart`: stops a running container (stop signal, SIGKILL after `timeout`)
    /// and runs it again; an exited one just runs again. Only for containers with a
    /// restart policy.
    pub async fn restart_container(&self, id: &str, timeout: Duration) -> Result<(), EngineError> {
        let (_lock, mut rec) = self.locked(id).await?;
        if rec.restart_policy.is_none() {
            return Err(EngineError::FailedPrecondition(format!(
                "container {} runs only once (a CRI container); create a new one",
                rec.id
            )));
        }
        self.supervisor.reset(&rec.id);
        if rec.state == ContainerState::Created {
            // Never ran: a start is all a restart means.
            drop(_lock);
            return self.start_container(&rec.id).await;
        }
        self.hold_policy(&mut rec)?;
        lifecycle::stop(&self.containers, &mut rec, timeout).await?;
        self.rerun(&mut rec, Why::Manual).await
    }

    /// Sends `signal` to the container's main process (`docker kill -s`). SIGKILL also
    /// waits until the exit is recorded. A kill with SIGKILL or the stop signal is a manual
    /// stop for the restart policy (as in Docker); a paused container is thawed then so
    /// that the signal takes effect.
    pub async fn kill_container(&self, id: &str, signal: i32) -> Result<(), EngineError> {
        if !(1..=64).contains(&signal) {
            return Err(EngineError::InvalidArgument(format!(
                "signal {signal} is not a valid signal number (1 to 64)"
            )));
        }
        let c = &self.containers;
        let (_lock, mut rec) = self.locked(id).await?;
        if rec.state != ContainerState::Running {
            return Err(not_running(&rec));
        }
        let stop_signal = rec
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(SIGTERM);
        let stops = signal == SIGKILL || signal == stop_signal;
        if stops {
            self.hold_policy(&mut rec)?;
        }
        let rt = &c.ports.runtime;
        rt.kill(&rec.pod_id, &rec.id, signal, false).await?;
        if stops && rec.paused {
            rt.resume(&rec.pod_id, &rec.id).await?;
        }
        if signal == SIGKILL {
            rt.wait(&rec.pod_id, &rec.id, KILL_WAIT).await?;
            lifecycle::refresh(c, &mut rec).await?;
        }
        Ok(())
    }

    /// Freezes every process of a running container (`docker pause`). It still counts as
    /// running (CRI reports it RUNNING, as containerd does); `paused` in its record says so.
    pub async fn pause_container(&self, id: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let (_lock, mut rec) = self.locked(id).await?;
        if rec.state != ContainerState::Running {
            return Err(not_running(&rec));
        }
        if rec.paused {
            return Err(EngineError::FailedPrecondition(format!(
                "container {} is already paused",
                rec.id
            )));
        }
        c.ports.runtime.pause(&rec.pod_id, &rec.id).await?;
        rec.paused = true;
        c.store.put(&rec)?;
        Ok(())
    }

    /// Thaws a paused container (`docker unpause`).
    pub async fn unpause_container(&self, id: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let (_lock, mut rec) = self.locked(id).await?;
        if !rec.paused || rec.state != ContainerState::Running {
            return Err(EngineError::FailedPrecondition(format!(
                "container {} is not paused",
                rec.id
            )));
        }
        c.ports.runtime.resume(&rec.pod_id, &rec.id).await?;
        rec.paused = false;
        c.store.put(&rec)?;
        Ok(())
    }

    /// Gives the container a new name (`docker rename`). The name rules of creation hold:
    /// a name in use in the pod (same attempt) is AlreadyExists. A container alone in a pod
    /// of its own name (what `create_single` makes for Docker) renames its pod too (uid and
    /// attempt unchanged), and then the name must be free among the pods of its namespace.
    pub async fn rename_container(&self, id: &str, new_name: &str) -> Result<(), EngineError> {
        if new_name.is_empty() {
            return Err(EngineError::InvalidArgument(
                "the container's new name is empty".into(),
            ));
        }
        let c = &self.containers;
        let (_lock, mut rec) = self.locked(id).await?;
        if rec.name == new_name {
            return Ok(());
        }
        let names = c.names.lock().await;
        let key = container_name_key(new_name, &rec.pod_id, rec.attempt);
        if let Some(other) = c.store.find(|r| r.id != rec.id && r.name_key() == key) {
            return Err(EngineError::AlreadyExists(format!(
                "container name {new_name:?} is already in use by container {}",
                other.id
            )));
        }
        let pods = &self.pods;
        let pod_names = pods.names.lock().await;
        let mut pod = pods.store.get(&rec.pod_id);
        let alone = c
            .store
            .list()
            .iter()
            .all(|r| r.pod_id != rec.pod_id || r.id == rec.id);
        if let Some(p) = &pod
            && alone
            && p.name == rec.name
        {
            // Docker's names are unique on the node: no other pod of the namespace (the
            // front door's) may have it, whatever its uid or attempt.
            let key = pod_name_key(new_name, &p.namespace, &p.uid, p.attempt);
            let taken = |r: &berth_core::pod::PodRecord| {
                r.id != p.id
                    && (r.name_key() == key || (r.name == new_name && r.namespace == p.namespace))
            };
            if let Some(other) = pods.store.find(taken) {
                return Err(EngineError::AlreadyExists(format!(
                    "name {new_name:?} is already in use by pod {}",
                    other.id
                )));
            }
        } else {
            pod = None;
        }
        if let Some(mut p) = pod {
            p.name = new_name.to_string();
            pods.store.put(&p)?;
        }
        rec.name = new_name.to_string();
        c.store.put(&rec)?;
        drop((names, pod_names));
        Ok(())
    }

    /// Whether its restart policy will start it again once the back-off ends (Docker's
    /// `State.Restarting`).
    pub fn is_restarting(&self, id: &str) -> bool {
        self.supervisor.is_restarting(id)
    }

    /// A new restart policy (`docker update --restart`) for a container that has one.
    pub async fn update_restart_policy(
        &self,
        id: &str,
        policy: RestartPolicy,
    ) -> Result<(), EngineError> {
        let (_lock, mut rec) = self.locked(id).await?;
        if rec.restart_policy.is_none() {
            return Err(EngineError::FailedPrecondition(format!(
                "container {} runs only once (a CRI container): it takes no restart policy",
                rec.id
            )));
        }
        rec.restart_policy = Some(policy);
        self.containers.store.put(&rec)?;
        if rec.state == ContainerState::Running {
            self.supervisor.watch(&rec.id);
        }
        Ok(())
    }
}
