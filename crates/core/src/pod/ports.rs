//! The side effects a pod needs, as traits. `berth-linux` implements them for real; the
//! `cri` crate drives them as an undoable transaction and tests them with fakes.
//! Every `remove`/`teardown` is idempotent: what is already gone is success.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::ipam::Subnet;
use super::networks::{Attachment, NetworkCreate, NetworkDef, PodNetwork};
use super::record::{NamespaceModes, PodNamespaces, PortMapping};
use super::sysctl::SysctlNs;

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The request itself is wrong (a bad sysctl, an unknown key...): InvalidArgument.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something failed on the node: which step, on what, and why.
    #[error("{step}: {message}")]
    Failed { step: &'static str, message: String },
}

impl PodError {
    pub fn failed(step: &'static str, message: impl std::fmt::Display) -> Self {
        PodError::Failed {
            step,
            message: message.to_string(),
        }
    }
}

/// What to create for a pod's namespaces.
#[derive(Debug, Clone)]
pub struct NamespaceRequest {
    pub pod_id: String,
    /// Directory to pin namespaces in (bind mounts): `<run_dir>/pods/<id>/ns`.
    pub pin_dir: PathBuf,
    pub modes: NamespaceModes,
    /// Set in the pod's UTS namespace (which exists unless the network mode is Node).
    pub hostname: String,
    /// The pod's own user namespace (mode POD): created first, with these mappings, so
    /// that it owns the pod's network, IPC and UTS namespaces.
    pub userns: Option<super::userns::UserNamespace>,
    /// Some: join this (pinned) network namespace instead of making one.
    pub join_net: Option<PathBuf>,
}

#[async_trait]
pub trait Namespaces: Send + Sync {
    /// Creates and pins the pod's network/IPC/UTS namespaces (those whose mode is Pod; UTS
    /// follows network) and, for PID mode Pod, starts the pod's init process in a new PID
    /// namespace. On error, nothing it created is left.
    async fn create(&self, req: &NamespaceRequest) -> Result<PodNamespaces, PodError>;
    /// Writes sysctls (already validated) inside the pod's namespaces. A key the kernel
    /// does not know is `InvalidArgument` naming it.
    async fn apply_sysctls(
        &self,
        ns: &PodNamespaces,
        sysctls: &[(String, SysctlNs, String)],
    ) -> Result<(), PodError>;
    /// Stops the init process (if any) and unpins and deletes the namespaces. Idempotent.
    async fn remove(&self, ns: &PodNamespaces, pin_dir: &Path) -> Result<(), PodError>;
    /// Whether the pod's init process (if it has one) is alive.
    fn init_alive(&self, ns: &PodNamespaces) -> bool;
}

/// The pod's files: resolv.conf, hosts, hostname, and /dev/shm.
#[derive(Debug, Clone)]
pub struct PodFilesRequest {
    pub dir: PathBuf,
    /// None: copy the node's /etc/resolv.conf.
    pub resolv_conf: Option<String>,
    pub hosts: String,
    pub hostname: String,
    /// True: mount a private tmpfs at `<dir>/shm`; false (host IPC): bind the host's /dev/shm.
    pub private_shm: bool,
    pub shm_size_bytes: u64,
}

#[async_trait]
pub trait PodFiles: Send + Sync {
    async fn prepare(&self, req: &PodFilesRequest) -> Result<(), PodError>;
    /// Rewrites `hosts` once the pod's IP is known.
    async fn write_hosts(&self, dir: &Path, hosts: &str) -> Result<(), PodError>;
    /// Unmounts shm and removes the directory. Idempotent.
    async fn remove(&self, dir: &Path) -> Result<(), PodError>;
}

#[async_trait]
pub trait Cgroups: Send + Sync {
    /// Creates the pod cgroup at `path` (below the cgroup root; see `pod::cgroup`).
    async fn create_pod(&self, path: &str) -> Result<(), PodError>;
    /// Removes it and its child cgroups (killing nothing: they must be empty of
    /// processes). Idempotent.
    async fn remove_pod(&self, path: &str) -> Result<(), PodError>;
    /// Moves process `pid` into the cgroup at `path` (created before), in every hierarchy.
    async fn add_process(&self, path: &str, pid: i32) -> Result<(), PodError>;
}

#[derive(Debug, Clone)]
pub struct NetworkRequest {
    pub pod_id: String,
    pub pod_name: String,
    pub pod_namespace: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    pub port_mappings: Vec<PortMapping>,
    /// The networks to attach, eth0 first (published ports go to the first). Empty: the
    /// default network.
    pub networks: Vec<PodNetwork>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkResult {
    pub ip: Option<IpAddr>,
    pub additional_ips: Vec<IpAddr>,
    /// One per network attached, eth0 first (empty where the edge does not report them).
    pub attachments: Vec<Attachment>,
}

#[async_trait]
pub trait Network: Send + Sync {
    /// Connects the pod: interface, address, routes, published ports. On error, nothing
    /// it set up is left. Called again for the same pod (a retry), it gives the same IP.
    async fn setup(&self, req: &NetworkRequest) -> Result<NetworkResult, PodError>;
    /// Disconnects the pod and releases its addresses. `netns` may already be gone.
    /// Idempotent.
    async fn teardown(&self, req: &NetworkRequest) -> Result<(), PodError>;
    /// `Ok` when pods can be networked; else the reason (for Status' NetworkReady).
    fn ready(&self) -> Result<(), String>;
    /// UpdateRuntimeConfig: new pods get addresses from `cidr` from now on.
    async fn set_pod_cidr(&self, cidr: Subnet) -> Result<(), PodError>;

    // Named networks (Docker's user-defined networks). A network edge without them (CNI,
    // where the plugins decide the network) answers InvalidArgument saying so.

    /// Creates a named network (its bridge, address and rules). A name in use is
    /// InvalidArgument naming the network that has it.
    async fn create_network(&self, req: &NetworkCreate) -> Result<NetworkDef, PodError> {
        Err(no_named_networks(&req.name))
    }
    /// Removes a network no pod is attached to (its bridge and rules). Unknown: success.
    async fn remove_network(&self, id: &str) -> Result<(), PodError> {
        Err(no_named_networks(id))
    }
    /// Every named network, oldest first (the default network is not one).
    fn networks(&self) -> Result<Vec<NetworkDef>, PodError> {
        Ok(Vec::new())
    }
    /// Attaches a set-up pod to one more network, on its next free interface.
    async fn connect(
        &self,
        req: &NetworkRequest,
        network: &PodNetwork,
    ) -> Result<Attachment, PodError> {
        let _ = req;
        Err(no_named_networks(&network.id))
    }
    /// Detaches the pod from `network` ("" the default one); not attached: success.
    async fn disconnect(&self, pod_id: &str, network: &str) -> Result<(), PodError> {
        let _ = pod_id;
        Err(no_named_networks(network))
    }
}

fn no_named_networks(what: &str) -> PodError {
    PodError::InvalidArgument(format!(
        "network {what:?}: named networks need berth's built-in bridge network; the node's pod network is CNI (network.cni_conf_dir), where the plugins decide the network"
    ))
}
