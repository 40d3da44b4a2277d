//! Notices container exits while someone follows the events: the runtime reports
//! an exit only when asked, so a light poll refreshes running containers and the refresh
//! publishes the STOPPED event. Nothing is polled without a subscriber.

use std::sync::Weak;
use std::time::Duration;

use berth_core::container::record::ContainerState;

use super::lifecycle;
use crate::Engine;

const EVERY: Duration = Duration::from_secs(1);

pub fn spawn(engine: Weak<Engine>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = engine.upgrade() else {
                break;
            };
            let c = &engine.containers;
            if !c.events.has_subscribers() {
                continue;
            }
            for rec in c.store.list() {
                if !matches!(rec.state, ContainerState::Created | ContainerState::Running) {
                    continue;
                }
                // A request holding the container's lock reports its own transitions.
                let lock = c.lock_of(&rec.id);
                let Ok(_guard) = lock.try_lock() else {
                    continue;
                };
                if let Some(mut rec) = c.store.get(&rec.id)
                    && let Err(e) = lifecycle::refresh(c, &mut rec).await
                {
                    tracing::debug!(container = %rec.id, error = %e, "exit watcher: refresh failed");
                }
            }
        }
    });
}
