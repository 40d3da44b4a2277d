//! The container endpoints, over berth-engine: a Docker container is a berth pod with one
//! container, both labelled [`API_LABEL`] so `crictl pods` and `crictl ps` show where they
//! came from. The Docker name is the pod's and the container's name; the Docker id is the
//! engine's container id. The create request is kept in the pod's record (its `config`),
//! which is where inspect reads Config and HostConfig back from.

pub mod archive;
pub mod attach;
pub mod control;
pub mod create;
pub mod filesystem;
pub mod host_config;
pub mod inspect;
pub mod lifecycle;
pub mod list;
pub mod logs;
mod namegen;
pub mod network_mode;
pub mod prune;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod top;

use berth_core::container::record::ContainerRecord;
use berth_engine::{EngineError, ErrorKind};
use bollard_stubs::models::ContainerCreateBody;
use serde::{Deserialize, Serialize};

use crate::DockerApi;
use crate::error::ApiError;

/// The label on the pod and the container of every Docker container.
pub const API_LABEL: &str = "io.berth.api";
pub const API_VALUE: &str = "docker";
/// The pod namespace of Docker containers (what `crictl pods` shows).
pub const NAMESPACE: &str = "docker";

/// What the pod record keeps of the create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    /// The request as sent (Config with HostConfig inside).
    pub body: ContainerCreateBody,
    /// The image's id when created.
    pub image_id: String,
    /// The directory of the container's log file.
    pub log_dir: String,
    /// Its binds and volumes as resolved at create (volume names included).
    #[serde(default)]
    pub mounts: Vec<crate::volumes::MountPoint>,
}

/// True for the containers this API made.
pub fn is_docker(rec: &ContainerRecord) -> bool {
    rec.labels.get(API_LABEL).map(String::as_str) == Some(API_VALUE)
}

/// Every Docker container, oldest first, states synced with the runtime.
pub async fn all(api: &DockerApi) -> Vec<ContainerRecord> {
    let mut recs: Vec<ContainerRecord> = api
        .runtime
        .list_containers()
        .await
        .into_iter()
        .filter(is_docker)
        .collect();
    recs.sort_by_key(|r| r.created_at);
    recs
}

/// dockerd's lookup: a full id, then a name (with or without its `/`), then a unique id
/// prefix; 404 "No such container" otherwise.
pub fn find(api: &DockerApi, key: &str) -> Result<ContainerRecord, ApiError> {
    let recs: Vec<ContainerRecord> = api
        .runtime
        .containers
        .store
        .list()
        .into_iter()
        .filter(is_docker)
        .collect();
    if let Some(r) = recs.iter().find(|r| r.id == key) {
        return Ok(r.clone());
    }
    let name = key.strip_prefix('/').unwrap_or(key);
    if let Some(r) = recs.iter().find(|r| r.name == name) {
        return Ok(r.clone());
    }
    let mut hits = recs
        .iter()
        .filter(|r| !key.is_empty() && r.id.starts_with(key));
    match (hits.next(), hits.next()) {
        (Some(r), None) => Ok(r.clone()),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "Multiple IDs found with provided prefix: {key}"
        ))),
        _ => Err(no_such(key)),
    }
}

/// The record, synced with the runtime (an exit is noticed).
pub async fn find_synced(api: &DockerApi, key: &str) -> Result<ContainerRecord, ApiError> {
    let rec = find(api, key)?;
    api.runtime
        .container_status(&rec.id)
        .await
        .map_err(from_engine)
}

pub fn no_such(key: &str) -> ApiError {
    ApiError::not_found(format!("No such container: {key}"))
}

/// The create request kept in the container's pod record.
pub fn stored(api: &DockerApi, rec: &ContainerRecord) -> Stored {
    api.runtime
        .pod(&rec.pod_id)
        .ok()
        .and_then(|p| serde_json::from_value(p.config).ok())
        .unwrap_or_default()
}

/// The engine's errors with dockerd's codes.
pub fn from_engine(e: EngineError) -> ApiError {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::InvalidArgument => ApiError::bad_request(msg),
        ErrorKind::NotFound => ApiError::not_found(msg),
        ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => ApiError::conflict(msg),
        ErrorKind::Unavailable => ApiError::new(http::StatusCode::SERVICE_UNAVAILABLE, msg),
        ErrorKind::Internal => ApiError::internal(msg),
    }
}

/// Docker's `Name`: the name with a leading `/`.
pub fn docker_name(rec: &ContainerRecord) -> String {
    format!("/{}", rec.name)
}

/// The user's labels (berth's own left out).
pub fn user_labels(rec: &ContainerRecord) -> std::collections::HashMap<String, String> {
    rec.labels
        .iter()
        .filter(|(k, _)| k.as_str() != API_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Nanoseconds since the epoch as RFC 3339 with nanoseconds (dockerd's time format);
/// 0 is Go's zero time, as dockerd prints a time that never happened.
pub fn rfc3339(ns: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    if ns <= 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}
