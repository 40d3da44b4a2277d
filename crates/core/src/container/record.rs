//! The persisted record of a container and its state machine.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::restart::RestartPolicy;

pub const CONTAINER_RECORD_VERSION: u32 = 1;

/// Creating (found at start ⇒ clean up) → Created → Running → Exited; Created → Exited when
/// stopped before it ever ran; Exited → Created when a container with a restart policy is
/// made again to run once more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Creating,
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub version: u32,
    pub id: String,
    pub pod_id: String,
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    /// The image as the kubelet named it, and the image id it resolved to.
    pub image: String,
    pub image_id: String,
    /// The image's repo digest (`name@sha256:…`) when known, else the id.
    pub image_ref: String,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    /// Completed, Error, OOMKilled (set when it exits).
    pub reason: String,
    pub message: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `<pod log_directory>/<log_path>`, when both are set.
    pub log_path: Option<PathBuf>,
    /// The CRI `log_path` as given (relative to the pod's log directory).
    pub log_path_cri: String,
    /// OCI bundle: config.json, rootfs (overlay), upper/work.
    pub bundle: PathBuf,
    pub stop_signal: Option<String>,
    pub handler: String,
    /// The core-native container config (for status, exec, updates).
    pub config: super::ContainerConfig,
    /// The identity the first process starts with (from the spec), for `ContainerStatus.user`;
    /// None in records written before berth recorded it.
    #[serde(default)]
    pub user: Option<ProcessUser>,
    /// Some: the container may start again after it exited (a Docker container), and this
    /// policy says when that happens by itself. None (every CRI container): it runs once.
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    /// How often the restart policy started it again (Docker's RestartCount).
    #[serde(default)]
    pub restart_count: u32,
    /// A person stopped or killed it and has not started it since: no policy restarts it.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Its processes are frozen (it still counts as running, as in Docker and CRI).
    #[serde(default)]
    pub paused: bool,
}

/// uid, gid and supplemental groups of a container's first process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub supplemental_groups: Vec<u32>,
}

impl From<&oci_spec::runtime::User> for ProcessUser {
    fn from(u: &oci_spec::runtime::User) -> Self {
        Self {
            uid: u.uid(),
            gid: u.gid(),
            supplemental_groups: u.additional_gids().clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("container {id}: cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub id: String,
    pub from: ContainerState,
    pub to: ContainerState,
}

impl ContainerRecord {
    pub fn transition(&mut self, to: ContainerState) -> Result<(), IllegalTransition> {
        use ContainerState::*;
        let ok = matches!(
            (self.state, to),
            (Creating, Created)
                | (Created, Running)
                | (Created, Exited)
                | (Running, Exited)
                | (Exited, Exited)
        ) || (self.state == Exited && to == Created && self.restart_policy.is_some());
        if !ok {
            return Err(IllegalTransition {
                id: self.id.clone(),
                from: self.state,
                to,
            });
        }
        self.state = to;
        Ok(())
    }

    /// Records how it ended. Reason as the kubelet expects: OOMKilled, Completed (0), Error.
    pub fn finish(&mut self, exit_code: i32, finished_at: i64, oom_killed: bool) {
        self.exit_code = exit_code;
        self.finished_at = finished_at;
        self.reason = if oom_killed {
            "OOMKilled".into()
        } else if exit_code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
        self.state = ContainerState::Exited;
        self.paused = false;
    }

    /// containerd's uniqueness key: name, pod, attempt.
    pub fn name_key(&self) -> String {
        container_name_key(&self.name, &self.pod_id, self.attempt)
    }
}

pub fn container_name_key(name: &str, pod_id: &str, attempt: u32) -> String {
    format!("{name}_{pod_id}_{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let mut r = ContainerRecord {
            version: CONTAINER_RECORD_VERSION,
            id: "c".into(),
            pod_id: "p".into(),
            name: "n".into(),
            attempt: 0,
            state: ContainerState::Creating,
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            image_ref: "sha256:x".into(),
            created_at: 1,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            log_path: None,
            log_path_cri: String::new(),
            bundle: PathBuf::new(),
            stop_signal: None,
            handler: String::new(),
            config: Default::default(),
            user: None,
            restart_policy: None,
            restart_count: 0,
            manually_stopped: false,
            paused: false,
        };
        assert!(r.transition(ContainerState::Running).is_err());
        r.transition(ContainerState::Created).unwrap();
        r.transition(ContainerState::Running).unwrap();
        r.finish(137, 5, true);
        assert_eq!(r.reason, "OOMKilled");
        r.finish(0, 5, false);
        assert_eq!(r.reason, "Completed");
        r.finish(2, 5, false);
        assert_eq!(r.reason, "Error");
        assert!(r.transition(ContainerState::Running).is_err());
        // A CRI container runs once; one with a restart policy may be made again.
        assert!(r.transition(ContainerState::Created).is_err());
        let mut again = r.clone();
        again.restart_policy = Some(RestartPolicy::No);
        again.transition(ContainerState::Created).unwrap();
        // Records written before these fields existed still load.
        let mut old = serde_json::to_value(&r).unwrap();
        for k in [
            "restart_policy",
            "restart_count",
            "manually_stopped",
            "paused",
        ] {
            old.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(serde_json::from_value::<ContainerRecord>(old).unwrap(), r);
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ContainerRecord>(&j).unwrap(), r);
        assert_eq!(r.name_key(), "n_p_0");
    }
}
