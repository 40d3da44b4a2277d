//! The `filters` of `GET /events` as dockerd applies them: values of one key are OR-ed,
//! keys are AND-ed; container, image, volume and network values match the object's id (or
//! an id prefix) or its name.

use super::Message;
use crate::error::ApiError;
use crate::query::Filters;

const KEYS: &[&str] = &[
    "container",
    "event",
    "image",
    "label",
    "type",
    "volume",
    "network",
    "daemon",
    "scope",
];

/// A checked filter set.
pub struct EventFilter(Filters);

impl EventFilter {
    pub fn new(filters: Filters) -> Result<Self, ApiError> {
        filters.only(KEYS)?;
        for t in filters.values("type") {
            if !matches!(
                t.as_str(),
                "container"
                    | "image"
                    | "volume"
                    | "network"
                    | "daemon"
                    | "plugin"
                    | "service"
                    | "node"
                    | "secret"
                    | "config"
                    | "builder"
            ) {
                return Err(ApiError::bad_request(format!("unknown event type: {t}")));
            }
        }
        Ok(Self(filters))
    }

    pub fn matches(&self, m: &Message) -> bool {
        let f = &self.0;
        let name = m.actor.attributes.get("name").map(String::as_str);
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
            let mut vals = f.values(key).peekable();
            vals.peek().is_none() || vals.any(|v| pred(v))
        };
        let fuzzy = |v: &str| m.actor.id.starts_with(v) || name == Some(v);
        let of_type = |kind: &str, v: &str| m.typ == kind && fuzzy(v);
        any("type", &|v| m.typ == v)
            && any("scope", &|v| v == m.scope)
            // `exec_start: sh` and the like match on the part before the colon too.
            && any("event", &|v| {
                m.action == v || m.action.split(':').next() == Some(v)
            })
            && any("container", &|v| of_type("container", v))
            && any("volume", &|v| of_type("volume", v))
            && any("network", &|v| {
                of_type("network", v)
                    || m.actor.attributes.get("network").is_some_and(|n| n == v)
            })
            && any("image", &|v| self.image_matches(m, v))
            && any("label", &|v| match v.split_once('=') {
                Some((k, val)) => m.actor.attributes.get(k).is_some_and(|x| x == val),
                None => m.actor.attributes.contains_key(v),
            })
            && f.values("daemon").next().is_none()
    }

    /// An image filter matches image events by id or name and container events by the
    /// container's image, with or without the tag.
    fn image_matches(&self, m: &Message, v: &str) -> bool {
        let image = match m.typ {
            "image" => m
                .actor
                .attributes
                .get("name")
                .cloned()
                .unwrap_or_else(|| m.actor.id.clone()),
            "container" => m.actor.attributes.get("image").cloned().unwrap_or_default(),
            _ => return false,
        };
        let untagged = |s: &str| -> String {
            match s.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
                _ => s.to_string(),
            }
        };
        image == v || m.actor.id == v || untagged(&image) == untagged(v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::events::{EventBus, Kind};

    fn one(kind: Kind, action: &str, id: &str, attrs: &[(&str, &str)]) -> Message {
        let bus = EventBus::default();
        let a: HashMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        bus.emit(kind, action, id, a);
        bus.subscribe().0.remove(0)
    }

    fn filter(raw: &str) -> EventFilter {
        EventFilter::new(Filters::parse(raw).expect("filters")).expect("valid")
    }

    #[test]
    fn container_by_name_or_id_prefix() {
        let m = one(
            Kind::Container,
            "die",
            "abcdef",
            &[
                ("name", "web"),
                ("image", "busybox:latest"),
                ("exitCode", "3"),
            ],
        );
        assert!(filter(r#"{"container":{"web":true}}"#).matches(&m));
        assert!(filter(r#"{"container":{"abc":true}}"#).matches(&m));
        assert!(!filter(r#"{"container":{"db":true}}"#).matches(&m));
        assert!(filter(r#"{"event":{"die":true},"type":{"container":true}}"#).matches(&m));
        assert!(!filter(r#"{"event":{"start":true}}"#).matches(&m));
        assert!(filter(r#"{"image":{"busybox":true}}"#).matches(&m));
        assert!(filter(r#"{"label":{"exitCode=3":true}}"#).matches(&m));
        assert!(!filter(r#"{"type":{"image":true}}"#).matches(&m));
    }

    #[test]
    fn exec_actions_match_before_the_colon() {
        let m = one(Kind::Container, "exec_start: sh -c true", "abc", &[]);
        assert!(filter(r#"{"event":{"exec_start":true}}"#).matches(&m));
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        assert!(EventFilter::new(Filters::parse(r#"{"colour":{"x":true}}"#).unwrap()).is_err());
        assert!(EventFilter::new(Filters::parse(r#"{"type":{"x":true}}"#).unwrap()).is_err());
    }
}
