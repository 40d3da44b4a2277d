//! Docker's event stream (`docker events`): what happened to containers, images, volumes
//! and networks, as dockerd words it (`create`, `start`, `die`, `destroy`, `pull`, `tag`…).
//!
//! Events come from two places: the engine's lifecycle events of Docker containers (create,
//! start, die, destroy: these also fire for exits nobody asked for) and the API handlers
//! for what only they know (kill and its signal, rename, pause, image tags…). Like dockerd,
//! the last [`HISTORY`] events are kept in memory for `--since`, and subscribers share one
//! bounded broadcast buffer: a slow reader loses the oldest events, never holds berthd up.

pub mod filter;
pub mod route;
mod translate;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

pub use translate::{container_event, spawn_translator};

/// Events kept for `--since` (dockerd keeps 256).
pub const HISTORY: usize = 256;
/// Events buffered per live subscriber.
const BUFFER: usize = 1024;

/// One event as the API sends it: the current fields and, for containers and images, the
/// legacy `status`/`id`/`from` that API clients before 1.22 read.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    #[serde(rename = "Type")]
    pub typ: &'static str,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: &'static str,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Orders events for the replay/live hand-over; not sent.
    #[serde(skip)]
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: HashMap<String, String>,
}

/// The kind of object an event is about (the `type` filter's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
        }
    }
}

pub struct EventBus {
    tx: broadcast::Sender<Message>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    history: VecDeque<Message>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            state: Mutex::new(State::default()),
        }
    }
}

impl EventBus {
    /// Records and broadcasts one event about object `id` of `kind`.
    pub fn emit(&self, kind: Kind, action: &str, id: &str, attributes: HashMap<String, String>) {
        let now = berth_engine::containers::lifecycle::now_ns();
        let legacy = matches!(kind, Kind::Container | Kind::Image);
        let from = (kind == Kind::Container)
            .then(|| attributes.get("image").cloned())
            .flatten();
        let mut msg = Message {
            typ: kind.as_str(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local",
            time: now / 1_000_000_000,
            time_nano: now,
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from,
            seq: 0,
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        msg.seq = st.next_seq;
        st.next_seq += 1;
        if st.history.len() == HISTORY {
            st.history.pop_front();
        }
        st.history.push_back(msg.clone());
        // Sent under the lock so that live events follow the history in order; an error
        // only means nobody listens.
        let _ = self.tx.send(msg);
    }

    /// A live subscription and the history as it stood when it began (no event is in both
    /// or in neither).
    pub fn subscribe(&self) -> (Vec<Message>, broadcast::Receiver<Message>) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.history.iter().cloned().collect(), self.tx.subscribe())
    }
}

/// Attributes of an event: `pairs` then the object's labels (dockerd puts both in one map).
pub fn attrs<'a>(
    pairs: &[(&str, String)],
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = labels
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in pairs {
        out.insert((*k).to_string(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_ordered() {
        let bus = EventBus::default();
        for i in 0..HISTORY + 5 {
            bus.emit(Kind::Image, "tag", &format!("i{i}"), HashMap::new());
        }
        let (hist, _rx) = bus.subscribe();
        assert_eq!(hist.len(), HISTORY);
        assert_eq!(hist[0].actor.id, "i5");
        assert!(hist.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn live_events_follow_the_history() {
        let bus = EventBus::default();
        bus.emit(Kind::Volume, "create", "v1", HashMap::new());
        let (hist, mut rx) = bus.subscribe();
        bus.emit(Kind::Volume, "destroy", "v1", HashMap::new());
        assert_eq!(hist.len(), 1);
        let live = rx.try_recv().expect("a live event");
        assert_eq!(live.action, "destroy");
        assert!(live.seq > hist[0].seq);
        // Volume events carry no legacy fields.
        assert!(live.status.is_none() && live.from.is_none());
    }
}
