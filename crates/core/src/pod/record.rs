//! The persisted record of a pod sandbox and its state machine.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Version of the on-disk record format.
pub const RECORD_VERSION: u32 = 1;

/// Lifecycle: Creating (resources being acquired; found at start ⇒ clean up) → Ready →
/// NotReady (stopped; network torn down, record kept) → removed (record deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodState {
    Creating,
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceMode {
    /// Shared by the pod's containers (the pod owns it).
    Pod,
    /// Each container has its own.
    Container,
    /// The node's namespace.
    Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceModes {
    pub network: NamespaceMode,
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub container_port: u16,
    pub host_port: u16,
    /// Empty: every host address.
    pub host_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Pinned namespaces and the pod's init process, as created by the namespace port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNamespaces {
    /// Bind-mounted namespace files; None where the node's namespace is used.
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pod's user namespace (userns mode POD), owner of its net/IPC/UTS namespaces.
    #[serde(default)]
    pub user: Option<PathBuf>,
    /// The pod's init process (PID 1 of the shared PID namespace), when PID is POD.
    pub init_pid: Option<i32>,
    /// Its start time (clock ticks since boot, /proc/PID/stat field 22), so a recycled PID
    /// is never mistaken for it.
    pub init_start_time: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub version: u32,
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub state: PodState,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub hostname: String,
    pub log_directory: String,
    pub runtime_handler: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub modes: NamespaceModes,
    pub namespaces: PodNamespaces,
    pub port_mappings: Vec<PortMapping>,
    pub dns: DnsConfig,
    pub sysctls: BTreeMap<String, String>,
    /// Pod-level cgroup (path below the cgroup root), when one was created.
    pub cgroup: Option<String>,
    /// Directory with resolv.conf, hosts, hostname and the shm mount.
    pub dir: PathBuf,
    pub ip: Option<IpAddr>,
    pub additional_ips: Vec<IpAddr>,
    /// The CRI PodSandboxConfig as received, JSON, for verbose status and containers.
    pub config: serde_json::Value,
    /// The pod's own user namespace (`userns_options` mode POD); None: the node's.
    #[serde(default)]
    pub userns: Option<super::userns::UserNamespace>,
    /// Which networks (mode Pod) or whose network namespace the pod uses, extra hosts.
    #[serde(default)]
    pub net: super::networks::PodNetOptions,
    /// Where the pod is attached (set up): one entry per network, eth0 first.
    #[serde(default)]
    pub attachments: Vec<super::networks::Attachment>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("pod {id}: cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub id: String,
    pub from: PodState,
    pub to: PodState,
}

impl PodRecord {
    /// The `name_namespace_uid_attempt` key that must be unique among pods (as in containerd).
    pub fn name_key(&self) -> String {
        name_key(&self.name, &self.namespace, &self.uid, self.attempt)
    }

    /// Moves the state machine; Stop on a stopped pod is fine (idempotent).
    pub fn transition(&mut self, to: PodState) -> Result<(), IllegalTransition> {
        use PodState::*;
        let ok = matches!(
            (self.state, to),
            (Creating, Ready) | (Ready, NotReady) | (NotReady, NotReady) | (Creating, NotReady)
        );
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
}

impl PodRecord {
    /// NotReady → Ready for a pod made again in place (a Docker container's pod after a
    /// reboot took its namespaces). CRI never does this: the kubelet makes a new sandbox.
    pub fn revive(&mut self) -> Result<(), IllegalTransition> {
        if self.state != PodState::NotReady {
            return Err(IllegalTransition {
                id: self.id.clone(),
                from: self.state,
                to: PodState::Ready,
            });
        }
        self.state = PodState::Ready;
        Ok(())
    }
}

pub fn name_key(name: &str, namespace: &str, uid: &str, attempt: u32) -> String {
    format!("{name}_{namespace}_{uid}_{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> PodRecord {
        PodRecord {
            version: RECORD_VERSION,
            id: "abc".into(),
            name: "n".into(),
            namespace: "ns".into(),
            uid: "u".into(),
            attempt: 1,
            state: PodState::Creating,
            created_at: 0,
            hostname: String::new(),
            log_directory: String::new(),
            runtime_handler: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            modes: NamespaceModes {
                network: NamespaceMode::Pod,
                pid: NamespaceMode::Container,
                ipc: NamespaceMode::Pod,
            },
            namespaces: PodNamespaces::default(),
            port_mappings: vec![],
            dns: DnsConfig::default(),
            sysctls: BTreeMap::new(),
            cgroup: None,
            dir: PathBuf::new(),
            ip: None,
            additional_ips: vec![],
            config: serde_json::Value::Null,
            userns: None,
            net: Default::default(),
            attachments: vec![],
        }
    }

    #[test]
    fn state_machine() {
        let mut r = rec();
        assert!(r.transition(PodState::Ready).is_ok());
        assert!(r.transition(PodState::Ready).is_err());
        assert!(r.transition(PodState::NotReady).is_ok());
        assert!(r.transition(PodState::NotReady).is_ok());
        assert!(r.transition(PodState::Ready).is_err());
        assert_eq!(r.name_key(), "n_ns_u_1");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<PodRecord>(&json).unwrap(), r);
    }
}
