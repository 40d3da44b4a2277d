//! Container and pod lifecycle events. Each event carries a snapshot (the pod's record and
//! the records of its containers) taken when it happened; each front door turns it into its
//! own message (CRI's GetContainerEvents, Docker's /events). Subscribers share one bounded
//! broadcast buffer: one that falls behind loses the oldest events and never holds berthd up.

use std::sync::Arc;

use berth_core::container::record::ContainerRecord;
use berth_core::pod::PodRecord;
use tokio::sync::broadcast;

use crate::containers::lifecycle::now_ns;
use crate::records::{ContainerStore, PodStore};

/// Events kept for a subscriber that has not read them yet.
pub const BUFFER: usize = 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// What the event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Pod,
    Container,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub subject: Subject,
    /// The container's id, or the pod's for a pod event.
    pub id: String,
    /// When, in nanoseconds since the epoch.
    pub at: i64,
    /// The pod as it is now (None when a container's pod is gone).
    pub pod: Option<PodRecord>,
    /// Every container of the pod, as it is now.
    pub containers: Vec<ContainerRecord>,
    /// For a container event, the container as it was at the event (also when it is
    /// already gone from the store: the Deleted event).
    pub container: Option<ContainerRecord>,
}

pub struct Events {
    tx: broadcast::Sender<Event>,
    pods: Arc<PodStore>,
}

impl Events {
    pub fn new(pods: Arc<PodStore>) -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            pods,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (the exit watcher only polls then).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A container event: its pod's status and every container of the pod, as they are now.
    pub fn container(&self, kind: EventKind, rec: &ContainerRecord, store: &ContainerStore) {
        if !self.has_subscribers() {
            return;
        }
        self.send(Event {
            kind,
            subject: Subject::Container,
            id: rec.id.clone(),
            at: now_ns(),
            pod: self.pods.get(&rec.pod_id),
            containers: of_pod(&rec.pod_id, store),
            container: Some(rec.clone()),
        });
    }

    /// A pod event; `containers` is called only when someone listens.
    pub fn pod(
        &self,
        kind: EventKind,
        pod: &PodRecord,
        containers: impl FnOnce() -> Vec<ContainerRecord>,
    ) {
        if !self.has_subscribers() {
            return;
        }
        self.send(Event {
            kind,
            subject: Subject::Pod,
            id: pod.id.clone(),
            at: now_ns(),
            pod: Some(pod.clone()),
            containers: containers(),
            container: None,
        });
    }

    fn send(&self, ev: Event) {
        // An error only means that every subscriber left meanwhile.
        let _ = self.tx.send(ev);
    }
}

/// The records of a pod's containers, for an event's snapshot.
pub fn of_pod(pod_id: &str, store: &ContainerStore) -> Vec<ContainerRecord> {
    store
        .list()
        .into_iter()
        .filter(|c| c.pod_id == pod_id)
        .collect()
}
