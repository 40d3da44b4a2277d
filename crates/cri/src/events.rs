//! Container and sandbox lifecycle events for `GetContainerEvents`. Each event carries the
//! snapshot the CRI defines (the pod's status and the statuses of its containers) taken
//! when it happened. Subscribers share one bounded broadcast buffer: one that falls behind
//! loses the oldest events (logged with their number) and never holds berthd up.

use std::sync::Arc;

use berth_api::cri::{self, ContainerEventType};
use berth_core::container::record::ContainerRecord;
use berth_core::pod::PodRecord;
use tokio::sync::broadcast;

use crate::containers::convert as cconv;
use crate::containers::lifecycle::now_ns;
use crate::pods::convert as pconv;
use crate::records::{ContainerStore, PodStore};

/// Events kept for a subscriber that has not read them yet.
pub const BUFFER: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<cri::ContainerEventResponse>,
    pods: Arc<PodStore>,
}

impl Events {
    pub fn new(pods: Arc<PodStore>) -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            pods,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (the exit watcher only polls then).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A container event: its pod's status and every container of the pod, as they are now.
    pub fn container(
        &self,
        kind: ContainerEventType,
        rec: &ContainerRecord,
        store: &ContainerStore,
    ) {
        if !self.has_subscribers() {
            return;
        }
        let pod = self.pods.get(&rec.pod_id);
        self.send(cri::ContainerEventResponse {
            container_id: rec.id.clone(),
            container_event_type: kind as i32,
            created_at: now_ns(),
            pod_sandbox_status: pod.as_ref().map(pconv::status),
            containers_statuses: statuses(&rec.pod_id, store),
        });
    }

    /// A sandbox event: container_id is the pod's id, as containerd sends it.
    pub fn pod(
        &self,
        kind: ContainerEventType,
        pod: &PodRecord,
        containers: impl FnOnce() -> Vec<cri::ContainerStatus>,
    ) {
        if !self.has_subscribers() {
            return;
        }
        self.send(cri::ContainerEventResponse {
            container_id: pod.id.clone(),
            container_event_type: kind as i32,
            created_at: now_ns(),
            pod_sandbox_status: Some(pconv::status(pod)),
            containers_statuses: containers(),
        });
    }

    fn send(&self, ev: cri::ContainerEventResponse) {
        // An error only means that every subscriber left meanwhile.
        let _ = self.tx.send(ev);
    }
}

/// The statuses of a pod's containers, for an event's snapshot.
pub fn statuses(pod_id: &str, store: &ContainerStore) -> Vec<cri::ContainerStatus> {
    store
        .list()
        .iter()
        .filter(|c| c.pod_id == pod_id)
        .map(cconv::status)
        .collect()
}
