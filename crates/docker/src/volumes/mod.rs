//! Docker volumes with the `local` driver (and the other mounts of a container: binds and
//! tmpfs): plain directories under berth's root
//! (`<root>/volumes/<name>/_data`, as dockerd lays them out), kept across berthd restarts.
//!
//! There is no reference count to keep in step: which containers use a volume is read from
//! the containers' stored create requests (each pod record keeps [`Stored`], whose `mounts`
//! name the volumes the container got). One lock ([`Volumes::lock`]) orders the steps that
//! decide on that: a container being created with volumes (from choosing them until its
//! pod record is written) against `volume rm`, `volume prune` and `rm -v`.
//!
//! [`Stored`]: crate::containers::Stored

#[cfg(test)]
mod api_tests;
pub mod attach;
pub mod copy_up;
pub mod driver;
pub mod parse;
pub mod routes;
pub mod spec;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::DockerApi;
use crate::containers::{is_docker, stored};

/// The volume store and the lock that orders its users.
pub struct Volumes {
    pub store: store::Store,
    pub lock: tokio::sync::Mutex<()>,
}

impl Volumes {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            store: store::Store::new(dir),
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// What a container mounts, as kept in its stored create request and shown by inspect
/// (`Mounts`): a volume or a bind, resolved at create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountPoint {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume's name ("" for a bind).
    pub name: String,
    /// The host path: the volume's `_data` or the bind's source.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// The mode as given (`ro`, `z`, `nocopy`…), as dockerd shows it.
    pub mode: String,
    pub propagation: String,
    /// Named by the user (`-v name:/x`, a Mount with a Source): `rm -v` keeps it, as
    /// dockerd keeps named volumes; anonymous ones go with their container.
    pub named: bool,
}

pub const KIND_VOLUME: &str = "volume";
pub const KIND_BIND: &str = "bind";
pub const KIND_TMPFS: &str = "tmpfs";
/// The one driver served.
pub const DRIVER: &str = "local";

impl MountPoint {
    /// dockerd's `MountPoint` for inspect and `ps`.
    pub fn to_docker(&self) -> bollard_stubs::models::MountPoint {
        let volume = self.kind == KIND_VOLUME;
        bollard_stubs::models::MountPoint {
            typ: Some(self.kind.clone()),
            name: volume.then(|| self.name.clone()),
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            driver: volume.then(|| DRIVER.to_string()),
            mode: Some(self.mode.clone()),
            rw: Some(self.rw),
            propagation: Some(self.propagation.clone()),
        }
    }

    /// `ps --filter volume=X`: X is the volume's name (a bind's source) or the destination.
    pub fn matches(&self, key: &str) -> bool {
        let by_name = if self.name.is_empty() {
            &self.source
        } else {
            &self.name
        };
        by_name == key || self.destination == key
    }
}

/// Every volume in use, with the ids of the Docker containers using it (any state: a
/// stopped container still holds its volumes until it is removed).
pub fn users(api: &DockerApi) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rec in api
        .runtime
        .containers
        .store
        .list()
        .into_iter()
        .filter(is_docker)
    {
        for m in stored(api, &rec).mounts {
            if m.kind == KIND_VOLUME {
                let ids = out.entry(m.name).or_default();
                if !ids.contains(&rec.id) {
                    ids.push(rec.id.clone());
                }
            }
        }
    }
    out
}

/// A volume event (`create`, `destroy`) with the local driver.
pub fn event(api: &DockerApi, action: &str, name: &str) {
    let attrs = std::collections::HashMap::from([("driver".to_string(), DRIVER.to_string())]);
    api.events
        .emit(crate::events::Kind::Volume, action, name, attrs);
}
