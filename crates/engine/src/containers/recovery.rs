//! Start-up reconcile for containers: undo interrupted creations, record exits that
//! happened while berthd was down.

use berth_core::container::record::ContainerState;

use super::Containers;
use super::lifecycle::refresh;

pub async fn reconcile(c: &Containers) {
    for mut rec in c.store.list() {
        match rec.state {
            ContainerState::Creating => {
                tracing::info!(container = %rec.id, "cleaning up a container whose creation was interrupted");
                let rt = c.ports.runtime.delete(&rec.pod_id, &rec.id).await;
                let fs = c.ports.rootfs.remove(&rec.bundle).await;
                match (rt, fs) {
                    (Ok(()), Ok(())) => {
                        let _ = c.store.delete(&rec.id);
                    }
                    (a, b) => {
                        tracing::warn!(container = %rec.id, runtime = ?a.err(), rootfs = ?b.err(), "cleanup incomplete")
                    }
                }
            }
            ContainerState::Created | ContainerState::Running => {
                if let Err(e) = refresh(c, &mut rec).await {
                    tracing::warn!(container = %rec.id, error = %e, "could not reattach");
                }
            }
            ContainerState::Exited => {}
        }
    }
}
