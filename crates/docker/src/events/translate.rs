//! The engine's lifecycle events of Docker containers as Docker events: Created → create,
//! Started → start, Stopped → die (with the exit code), Deleted → destroy. Pods and CRI
//! containers are not Docker objects and are left out.

use std::sync::{Arc, Weak};

use berth_core::container::record::ContainerRecord;
use berth_engine::events::{EventKind, Subject};
use tokio::sync::broadcast::error::RecvError;

use super::{Kind, attrs};
use crate::DockerApi;
use crate::containers::{is_docker, user_labels};

pub fn spawn_translator(api: &Arc<DockerApi>) {
    let mut events = api.runtime.events().subscribe();
    let weak: Weak<DockerApi> = Arc::downgrade(api);
    tokio::spawn(async move {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "docker events: fell behind the engine's events");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(api) = weak.upgrade() else { return };
            let (Subject::Container, Some(rec)) = (ev.subject, ev.container.as_ref()) else {
                continue;
            };
            if !is_docker(rec) {
                continue;
            }
            let action = match ev.kind {
                EventKind::Created => "create",
                EventKind::Started => "start",
                EventKind::Stopped => "die",
                EventKind::Deleted => "destroy",
            };
            let mut extra = Vec::new();
            if ev.kind == EventKind::Stopped {
                extra.push(("exitCode", rec.exit_code.to_string()));
            }
            container_event(&api, rec, action, extra);
        }
    });
}

/// A container event with dockerd's attributes: the image, the name, the labels, `extra`.
pub fn container_event(
    api: &DockerApi,
    rec: &ContainerRecord,
    action: &str,
    extra: Vec<(&str, String)>,
) {
    let mut pairs = vec![("image", rec.image.clone()), ("name", rec.name.clone())];
    pairs.extend(extra);
    let labels = user_labels(rec);
    api.events.emit(
        Kind::Container,
        action,
        &rec.id,
        attrs(&pairs, labels.iter()),
    );
}
