//! Which sysctls a pod may set: only those the kernel namespaces, and only in namespaces
//! the pod owns (as runc and the kubelet rule). The edge then writes them inside the pod's
//! namespaces and reports keys the kernel does not know.

use std::collections::BTreeMap;

use super::record::{NamespaceMode, NamespaceModes};

/// The namespace a sysctl lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNs {
    Net,
    Ipc,
    Uts,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysctlError {
    #[error(
        "sysctl {key:?} is not namespaced: a pod cannot set it (only net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.hostname and kernel.domainname are)"
    )]
    NotNamespaced { key: String },
    #[error("sysctl {key:?} would change the node's {ns} namespace: the pod uses the host's")]
    HostNamespace { key: String, ns: &'static str },
    #[error("sysctl {key:?} has an invalid name or value {value:?}")]
    Invalid { key: String, value: String },
}

const IPC_KEYS: &[&str] = &[
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
];

/// Normalises `net/ipv4/ip_forward` to `net.ipv4.ip_forward` and classifies it.
pub fn classify(key: &str) -> Result<(String, SysctlNs), SysctlError> {
    let norm = key.replace('/', ".");
    let valid = !norm.is_empty()
        && !norm.starts_with('.')
        && !norm.ends_with('.')
        && !norm.contains("..")
        && norm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if !valid {
        return Err(SysctlError::Invalid {
            key: key.to_string(),
            value: String::new(),
        });
    }
    let ns = if norm.starts_with("net.") {
        SysctlNs::Net
    } else if IPC_KEYS.contains(&norm.as_str()) || norm.starts_with("fs.mqueue.") {
        SysctlNs::Ipc
    } else if norm == "kernel.hostname" || norm == "kernel.domainname" {
        SysctlNs::Uts
    } else {
        return Err(SysctlError::NotNamespaced {
            key: key.to_string(),
        });
    };
    Ok((norm, ns))
}

/// Checks every sysctl against the pod's namespace modes; returns them normalised.
pub fn validate(
    sysctls: &BTreeMap<String, String>,
    modes: &NamespaceModes,
) -> Result<Vec<(String, SysctlNs, String)>, SysctlError> {
    let mut out = Vec::new();
    for (key, value) in sysctls {
        if value.contains('\n') || value.contains('\0') {
            return Err(SysctlError::Invalid {
                key: key.clone(),
                value: value.clone(),
            });
        }
        let (norm, ns) = classify(key)?;
        let host = match ns {
            // UTS follows the network namespace in Kubernetes (hostNetwork ⇒ host UTS).
            SysctlNs::Net | SysctlNs::Uts => modes.network == NamespaceMode::Node,
            SysctlNs::Ipc => modes.ipc == NamespaceMode::Node,
        };
        if host {
            let ns_name = match ns {
                SysctlNs::Net => "network",
                SysctlNs::Ipc => "IPC",
                SysctlNs::Uts => "UTS",
            };
            return Err(SysctlError::HostNamespace {
                key: key.clone(),
                ns: ns_name,
            });
        }
        out.push((norm, ns, value.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(net: NamespaceMode, ipc: NamespaceMode) -> NamespaceModes {
        NamespaceModes {
            network: net,
            pid: NamespaceMode::Container,
            ipc,
        }
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify("net/ipv4/ip_forward").unwrap().0,
            "net.ipv4.ip_forward"
        );
        assert_eq!(classify("kernel.shmmax").unwrap().1, SysctlNs::Ipc);
        assert_eq!(classify("fs.mqueue.msg_max").unwrap().1, SysctlNs::Ipc);
        assert!(matches!(
            classify("vm.swappiness"),
            Err(SysctlError::NotNamespaced { .. })
        ));
        assert!(matches!(
            classify("kernel.pid_max"),
            Err(SysctlError::NotNamespaced { .. })
        ));
        assert!(classify("../etc").is_err());
        assert!(classify("net..x").is_err());
    }

    #[test]
    fn host_namespaces_refuse_their_sysctls() {
        let mut s = BTreeMap::new();
        s.insert(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "0".to_string(),
        );
        assert!(validate(&s, &modes(NamespaceMode::Pod, NamespaceMode::Pod)).is_ok());
        let e = validate(&s, &modes(NamespaceMode::Node, NamespaceMode::Pod)).unwrap_err();
        assert!(
            e.to_string()
                .contains("net.ipv4.ip_unprivileged_port_start")
        );
        let mut s = BTreeMap::new();
        s.insert("kernel.shmmax".to_string(), "1000".to_string());
        assert!(validate(&s, &modes(NamespaceMode::Node, NamespaceMode::Pod)).is_ok());
        assert!(validate(&s, &modes(NamespaceMode::Pod, NamespaceMode::Node)).is_err());
        let mut s = BTreeMap::new();
        s.insert("net.core.somaxconn".to_string(), "1\n2".to_string());
        assert!(validate(&s, &modes(NamespaceMode::Pod, NamespaceMode::Pod)).is_err());
    }
}
