//! Waiting for a container to exit (`docker wait`, `docker run` without `-d`). A waiter
//! listens to the lifecycle events and asks the supervisor to follow the container, whose
//! wait on the runtime records the exit as it happens: no polling per waiter.

use berth_core::container::record::ContainerState;
use tokio::sync::broadcast::error::RecvError;

use crate::events::{EventKind, Subject};
use crate::{Engine, EngineError};

/// What to wait for (Docker's `condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// Until it is not running; at once when it is not (created or exited).
    #[default]
    NotRunning,
    /// Until it exits next, even when it is not running now (before a start).
    NextExit,
    /// Until it is removed.
    Removed,
}

impl Engine {
    /// Answers the container's exit code once `condition` holds (for Removed: the code of
    /// its last exit).
    pub async fn wait_container(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<i32, EngineError> {
        let c = &self.containers;
        let rec = c.resolve(id)?;
        let id = rec.id;
        // Listen first, then look: an exit in between is not missed.
        let mut events = self.events().subscribe();
        self.supervisor.watch(&id);
        let rec = self.container_status(&id).await?;
        let mut last = rec.exit_code;
        if condition == WaitCondition::NotRunning && rec.state != ContainerState::Running {
            return Ok(last);
        }
        let since = rec.finished_at;
        loop {
            match events.recv().await {
                Ok(ev) if ev.subject == Subject::Container && ev.id == id => match ev.kind {
                    EventKind::Stopped => {
                        if let Some(r) = ev.containers.iter().find(|r| r.id == id) {
                            last = r.exit_code;
                        }
                        if condition != WaitCondition::Removed {
                            return Ok(last);
                        }
                    }
                    EventKind::Deleted => return Ok(last),
                    _ => {}
                },
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // Events were lost: the record tells what happened meanwhile.
                    let Some(r) = c.store.get(&id) else {
                        return Ok(last);
                    };
                    last = r.exit_code;
                    let exited = r.state == ContainerState::Exited && r.finished_at != since;
                    if exited && condition != WaitCondition::Removed {
                        return Ok(last);
                    }
                }
                Err(RecvError::Closed) => {
                    return Err(EngineError::Internal(
                        "the engine's events ended while waiting".into(),
                    ));
                }
            }
        }
    }
}
