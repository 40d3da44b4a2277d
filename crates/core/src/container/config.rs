//! Core-native mirrors of the CRI `ContainerConfig` fields that shape the OCI spec, and the
//! process part of an OCI image config. The cri crate converts from the protobuf types, so
//! core never depends on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SpecError;

/// CRI `ContainerConfig` (runtime.v1), the fields the spec needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.attempt`.
    pub attempt: u32,
    /// `image.image` as the kubelet sent it.
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    /// `envs`, in order (key, value).
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    /// Kept for the runtime (attach); not part of the spec.
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// `linux.resources`.
    pub resources: Resources,
    /// `linux.security_context`.
    pub security: SecurityContext,
}

/// CRI `MountPropagation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// PROPAGATION_PRIVATE: `rprivate`.
    #[default]
    Private,
    /// PROPAGATION_HOST_TO_CONTAINER: `rslave`.
    HostToContainer,
    /// PROPAGATION_BIDIRECTIONAL: `rshared`.
    Bidirectional,
}

/// CRI `Mount` (SELinux relabel and per-mount idmaps are not supported and ignored; a pod
/// with a user namespace idmaps every bind mount with the pod's mapping).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
    pub propagation: Propagation,
    /// Read-only all the way down (submounts too); needs `readonly` and private propagation.
    pub recursive_read_only: bool,
    /// Docker's tmpfs mounts (the CRI has none): Some is a new tmpfs with these mount
    /// options (`nosuid`, `size=64m`, `mode=1777`…, later ones win) instead of a bind, and
    /// `host_path` is empty.
    pub tmpfs: Option<Vec<String>>,
}

/// CRI `Device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    pub container_path: String,
    pub host_path: String,
    /// Any of `r`, `w`, `m`; empty means `rwm`.
    pub permissions: String,
}

/// CRI `HugepageLimit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HugepageLimit {
    /// `2MB`, `1GB`, ... as the kubelet sends it.
    pub page_size: String,
    pub limit: u64,
}

/// CRI `LinuxContainerResources`: 0 means "not set", as in the protobuf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub oom_score_adj: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub hugepage_limits: Vec<HugepageLimit>,
    pub unified: BTreeMap<String, String>,
    pub memory_swap_limit_in_bytes: i64,
}

/// CRI `Capability`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Names without or with `CAP_`, any case; `ALL` means every capability.
    pub add: Vec<String>,
    pub drop: Vec<String>,
    pub add_ambient: Vec<String>,
}

/// CRI `SecurityProfile` (seccomp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompProfile {
    RuntimeDefault,
    Unconfined,
    /// `localhost_ref`: the profile's path on the node; the caller reads it and passes the
    /// JSON text in [`super::ContainerInput::seccomp_localhost`].
    Localhost(String),
}

/// The container's PID namespace (`namespace_options.pid`, with `target_id` resolved by the
/// caller to that container's init PID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PidMode {
    Pod,
    Container,
    Node,
    Target { pid: i32 },
}

/// CRI `SupplementalGroupsPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplementalGroupsPolicy {
    /// The request's groups plus the user's memberships in the image's /etc/group.
    #[default]
    Merge,
    /// Only the request's groups (and the primary gid): the image cannot add any.
    Strict,
}

/// CRI `LinuxContainerSecurityContext`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityContext {
    /// None: the default set, untouched.
    pub capabilities: Option<Capabilities>,
    pub privileged: bool,
    /// None: follow the pod's PID mode.
    pub pid: Option<PidMode>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    /// Wins over `run_as_user` when both are set (as in containerd).
    pub run_as_username: String,
    pub readonly_rootfs: bool,
    pub supplemental_groups: Vec<i64>,
    /// Whether the image's /etc/group memberships join `supplemental_groups`.
    pub supplemental_groups_policy: SupplementalGroupsPolicy,
    pub no_new_privs: bool,
    /// None: containerd's defaults. (Protobuf cannot tell an empty list from an absent one;
    /// the cri crate maps both to None, which is what containerd ends up doing too.)
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// None: unconfined (containerd's default when the kubelet sends no profile).
    pub seccomp: Option<SeccompProfile>,
}

/// The process part of an OCI image config (`config` of the image config JSON); `Volumes`
/// are ignored, as containerd's CRI does by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// Not in the spec: the runtime uses it to stop the container.
    pub stop_signal: Option<String>,
}

/// The `config` object of an image config, with its Docker-style capitalised keys; null
/// fields are common in real images and mean "unset".
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawProcess {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    stop_signal: Option<String>,
}

impl ImageConfig {
    /// From the raw image config JSON (the whole blob, whose `config` object holds the
    /// process fields). A blob without `config` gives an empty config.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, SpecError> {
        let process = match value.get("config") {
            None | Some(serde_json::Value::Null) => RawProcess::default(),
            Some(c) => RawProcess::deserialize(c).map_err(|e| SpecError::Invalid {
                field: "image config",
                value: "config".into(),
                reason: e.to_string(),
            })?,
        };
        Ok(Self {
            entrypoint: process.entrypoint.unwrap_or_default(),
            cmd: process.cmd.unwrap_or_default(),
            env: process.env.unwrap_or_default(),
            working_dir: process.working_dir.unwrap_or_default(),
            user: process.user.unwrap_or_default(),
            stop_signal: process.stop_signal.filter(|s| !s.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_from_blob() {
        let blob = serde_json::json!({
            "architecture": "amd64",
            "config": {
                "Entrypoint": ["/bin/app"],
                "Cmd": null,
                "Env": ["PATH=/bin", "A=1"],
                "WorkingDir": "/srv",
                "User": "app:app",
                "StopSignal": "SIGQUIT",
                "Volumes": {"/data": {}}
            }
        });
        let c = ImageConfig::from_json(&blob).unwrap();
        assert_eq!(c.entrypoint, vec!["/bin/app"]);
        assert!(c.cmd.is_empty());
        assert_eq!(c.env, vec!["PATH=/bin", "A=1"]);
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "app:app");
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(
            ImageConfig::from_json(&serde_json::json!({})).unwrap(),
            ImageConfig::default()
        );
        let bad = serde_json::json!({"config": {"Cmd": "not a list"}});
        assert!(ImageConfig::from_json(&bad).is_err());
    }
}
