//! Containers: the OCI runtime spec (`config.json`) of a CRI container, built the way
//! containerd's CRI plugin builds it (container_create_linux.go, opts/spec_opts.go), from
//! data only: the container's CRI config, its pod, the image config and the image's
//! passwd/group contents, and facts about the node the caller looked up.
//!
//! One entry point: [`build`]. Sub-modules hold one concern each and are public for their
//! constants and helpers (default capabilities, masked paths, shares → weight...).

pub mod config;
pub mod devices;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod record;
pub mod resources;
pub mod restart;
pub mod seccomp;
pub mod security;
pub mod user;

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{Linux, Process, Root, Spec};

pub use config::{
    Capabilities, ContainerConfig, Device, HugepageLimit, ImageConfig, Mount, PidMode, Propagation,
    Resources, SeccompProfile, SecurityContext, SupplementalGroupsPolicy,
};
pub use devices::{DeviceKind, DeviceNode};
pub use resources::{CgroupCaps, CgroupVersion};

use crate::config::CgroupDriver;
use crate::pod::record::{NamespaceMode, PodRecord};

/// OCI runtime spec version written into `ociVersion`.
pub const OCI_VERSION: &str = "1.1.0";

/// Annotation keys containerd's CRI sets on container specs.
pub mod annotations {
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

/// Why a spec cannot be built; every message names the field or value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified")]
    NoCommand,
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("user {0:?} is not in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} is not in the image's /etc/group")]
    UnknownGroup(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("seccomp profile {profile:?}: {reason}")]
    Seccomp { profile: String, reason: String },
    #[error("device {0:?} was not found on the host")]
    DeviceNotFound(String),
    #[error("the pod has no {0} namespace to join (is the pod ready?)")]
    MissingPodNamespace(&'static str),
    #[error("privileged container {0:?} is not allowed in a non-privileged pod")]
    PrivilegedInUnprivilegedPod(String),
}

/// Everything [`build`] needs; the caller does all the I/O.
#[derive(Debug, Clone, Copy)]
pub struct ContainerInput<'a> {
    /// The container id (hex); its first 12 characters name the cgroup.
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub pod: &'a PodRecord,
    /// The pod's `linux.security_context.privileged`.
    pub pod_privileged: bool,
    pub image: &'a ImageConfig,
    /// The image name for the image-name annotation (containerd uses the reference the
    /// image was resolved from).
    pub image_name: &'a str,
    /// Contents of the image's /etc/passwd and /etc/group, None when absent.
    pub passwd: Option<&'a str>,
    pub group: Option<&'a str>,
    /// `root.path`: the rootfs, relative to the bundle (containerd: `rootfs`) or absolute.
    pub rootfs: &'a Path,
    pub cgroup_driver: CgroupDriver,
    pub cgroups: CgroupCaps,
    /// The node's hostname, for HOSTNAME when the pod has none.
    pub node_hostname: &'a str,
    /// pids.max for the container, if the node sets one.
    pub pids_limit: Option<i64>,
    /// Nodes for `config.devices`, found on the host by the caller.
    pub device_nodes: &'a [DeviceNode],
    /// Every device node of the host's /dev; only read for privileged containers.
    pub host_devices: &'a [DeviceNode],
    /// The JSON of the Localhost seccomp profile, when the config asks for one.
    pub seccomp_localhost: Option<&'a str>,
    /// The host's capability bounding set (what `ALL` and privileged mean), None when
    /// unknown (then every capability oci-spec knows).
    pub host_caps: Option<&'a [oci_spec::runtime::Capability]>,
}

/// The OCI runtime spec for a container.
pub fn build(input: &ContainerInput<'_>) -> Result<Spec, SpecError> {
    let config = input.config;
    let sc = &config.security;
    let pod = input.pod;
    if sc.privileged && !input.pod_privileged {
        return Err(SpecError::PrivilegedInUnprivilegedPod(config.name.clone()));
    }

    let hostname = if pod.hostname.is_empty() {
        input.node_hostname
    } else {
        pod.hostname.as_str()
    };
    let caps = security::capability_set(sc, input.host_caps)?;
    let oom = i32::try_from(config.resources.oom_score_adj).map_err(|_| SpecError::Invalid {
        field: "oom_score_adj",
        value: config.resources.oom_score_adj.to_string(),
        reason: "out of range".into(),
    })?;

    let mut process = Process::default();
    process.set_terminal(Some(config.tty));
    process.set_console_size(None);
    process.set_user(user::user(
        sc,
        &input.image.user,
        input.passwd,
        input.group,
    )?);
    process.set_args(Some(process::args(config, input.image)?));
    process.set_env(Some(process::env(config, input.image, hostname)));
    process.set_cwd(process::cwd(config, input.image)?.into());
    process.set_capabilities(Some(security::capabilities(&caps)));
    // containerd removes the default rlimits (WithoutDefaultSecuritySettings); CRI has none.
    process.set_rlimits(None);
    process.set_no_new_privileges(Some(sc.no_new_privs));
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    process.set_oom_score_adj(Some(oom));

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(sc.readonly_rootfs));

    let (mounts, rootfs_propagation) = mounts::mounts(config, &pod.dir, pod.userns.as_ref())?;
    let (devices, device_rules) = devices::devices(
        &config.devices,
        input.device_nodes,
        sc.privileged,
        input.host_devices,
    )?;
    let pid = namespaces::pid_mode(sc.pid, &pod.modes);
    let namespaces = namespaces::namespaces(
        &pod.modes,
        &pod.namespaces,
        pid,
        input.cgroups.version,
        sc.privileged,
        pod.userns.is_some(),
    )?;
    let resources = resources::resources(
        &config.resources,
        input.cgroups,
        input.pids_limit,
        device_rules,
    )?;
    let seccomp = seccomp::seccomp(
        sc.seccomp.as_ref(),
        sc.privileged,
        &caps,
        input.seccomp_localhost,
    )?;

    let mut linux = Linux::default();
    // Joining the pod's user namespace: the mappings are the pod's, as runc expects them
    // alongside a user namespace path.
    let userns = pod.userns.as_ref();
    linux.set_uid_mappings(userns.map(|u| mounts::oci_mappings(&u.uids)).transpose()?);
    linux.set_gid_mappings(userns.map(|u| mounts::oci_mappings(&u.gids)).transpose()?);
    linux.set_sysctl(None);
    linux.set_resources(Some(resources));
    linux.set_cgroups_path(
        resources::cgroups_path(input.cgroup_driver, pod.cgroup.as_deref(), input.id)
            .map(Into::into),
    );
    linux.set_namespaces(Some(namespaces));
    linux.set_devices(Some(devices));
    linux.set_seccomp(seccomp);
    linux.set_rootfs_propagation(rootfs_propagation);
    linux.set_masked_paths(Some(security::masked_paths(sc)));
    linux.set_readonly_paths(Some(security::readonly_paths(sc)));

    let annotations: HashMap<String, String> = [
        (annotations::CONTAINER_TYPE, "container"),
        (annotations::SANDBOX_ID, pod.id.as_str()),
        (annotations::SANDBOX_NAME, pod.name.as_str()),
        (annotations::SANDBOX_NAMESPACE, pod.namespace.as_str()),
        (annotations::SANDBOX_UID, pod.uid.as_str()),
        (annotations::CONTAINER_NAME, config.name.as_str()),
        (annotations::IMAGE_NAME, input.image_name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.into());
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts));
    spec.set_process(Some(process));
    // The hostname can only be set in a UTS namespace of our own (the pod's).
    spec.set_hostname((pod.modes.network != NamespaceMode::Node).then(|| hostname.to_string()));
    spec.set_domainname(None);
    spec.set_hooks(None);
    spec.set_annotations(Some(annotations));
    spec.set_linux(Some(linux));
    Ok(spec)
}

#[cfg(test)]
mod tests;
