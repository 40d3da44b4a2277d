//! CRI pod messages ↔ berth pod records. Pure functions.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use berth_api::cri;
use berth_core::pod::record::{
    DnsConfig, NamespaceMode, NamespaceModes, PodRecord, PodState, PortMapping, Protocol,
};
use berth_core::pod::userns::{IdMapping, UserNamespace};

/// Reads the namespace modes a pod asks for. CRI's zero value is POD; TARGET makes no sense
/// for a pod.
pub fn modes(config: &cri::PodSandboxConfig) -> Result<NamespaceModes, String> {
    let opts = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .cloned()
        .unwrap_or_default();
    let one = |what: &str, v: i32, allow_container: bool| -> Result<NamespaceMode, String> {
        match cri::NamespaceMode::try_from(v) {
            Ok(cri::NamespaceMode::Pod) => Ok(NamespaceMode::Pod),
            Ok(cri::NamespaceMode::Node) => Ok(NamespaceMode::Node),
            Ok(cri::NamespaceMode::Container) if allow_container => Ok(NamespaceMode::Container),
            // A pod-level network/IPC namespace "per container" is the pod's own.
            Ok(cri::NamespaceMode::Container) => Ok(NamespaceMode::Pod),
            Ok(cri::NamespaceMode::Target) => Err(format!(
                "namespace_options.{what} = TARGET is only valid for containers"
            )),
            Err(_) => Err(format!(
                "namespace_options.{what} = {v} is not a namespace mode"
            )),
        }
    };
    Ok(NamespaceModes {
        network: one("network", opts.network, false)?,
        pid: one("pid", opts.pid, true)?,
        ipc: one("ipc", opts.ipc, false)?,
    })
}

/// The CRI mappings as core's.
fn id_mappings(maps: &[cri::IdMapping]) -> Vec<IdMapping> {
    maps.iter()
        .map(|m| IdMapping {
            container_id: m.container_id,
            host_id: m.host_id,
            length: m.length,
        })
        .collect()
}

/// `namespace_options.userns_options` of a pod or container (`what` names it in errors):
/// None for the node's user namespace (NODE, or no options at all, as older kubelets send),
/// the checked mappings for POD. CONTAINER and TARGET are not modes a user namespace has.
pub fn userns(
    what: &str,
    opts: Option<&cri::NamespaceOption>,
) -> Result<Option<UserNamespace>, String> {
    let Some(u) = opts.and_then(|o| o.userns_options.as_ref()) else {
        return Ok(None);
    };
    match cri::NamespaceMode::try_from(u.mode) {
        Ok(cri::NamespaceMode::Node) if u.uids.is_empty() && u.gids.is_empty() => Ok(None),
        Ok(cri::NamespaceMode::Node) => Err(format!(
            "{what} namespace_options.userns_options: mode NODE takes no uid/gid mappings"
        )),
        Ok(cri::NamespaceMode::Pod) => {
            UserNamespace::new(id_mappings(&u.uids), id_mappings(&u.gids))
                .map(Some)
                .map_err(|e| format!("{what} namespace_options.userns_options: {e}"))
        }
        Ok(m) => Err(format!(
            "{what} namespace_options.userns_options: mode {} is not supported (only POD and NODE)",
            m.as_str_name()
        )),
        Err(_) => Err(format!(
            "{what} namespace_options.userns_options: mode {} is not a namespace mode",
            u.mode
        )),
    }
}

fn mode_to_cri(m: NamespaceMode) -> i32 {
    match m {
        NamespaceMode::Pod => cri::NamespaceMode::Pod as i32,
        NamespaceMode::Container => cri::NamespaceMode::Container as i32,
        NamespaceMode::Node => cri::NamespaceMode::Node as i32,
    }
}

pub fn port_mappings(config: &cri::PodSandboxConfig) -> Result<Vec<PortMapping>, String> {
    let mut out = Vec::new();
    for pm in &config.port_mappings {
        // As containerd: a mapping without a host port publishes nothing.
        if pm.host_port <= 0 {
            continue;
        }
        let port = |what: &str, v: i32| {
            u16::try_from(v)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port_mappings: {what} {v} is not in 1..=65535"))
        };
        let protocol = match cri::Protocol::try_from(pm.protocol) {
            Ok(cri::Protocol::Tcp) => Protocol::Tcp,
            Ok(cri::Protocol::Udp) => Protocol::Udp,
            Ok(cri::Protocol::Sctp) => Protocol::Sctp,
            Err(_) => {
                return Err(format!(
                    "port_mappings: protocol {} is not TCP, UDP or SCTP",
                    pm.protocol
                ));
            }
        };
        let host_ip = if pm.host_ip.is_empty() || pm.host_ip == "0.0.0.0" || pm.host_ip == "::" {
            None
        } else {
            Some(pm.host_ip.parse::<IpAddr>().map_err(|_| {
                format!(
                    "port_mappings: host_ip {:?} is not an IP address",
                    pm.host_ip
                )
            })?)
        };
        out.push(PortMapping {
            protocol,
            container_port: port("container_port", pm.container_port)?,
            host_port: port("host_port", pm.host_port)?,
            host_ip,
        });
    }
    Ok(out)
}

pub fn dns(config: &cri::PodSandboxConfig) -> DnsConfig {
    config
        .dns_config
        .as_ref()
        .map(|d| DnsConfig {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        })
        .unwrap_or_default()
}

pub fn sorted(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn unsorted(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn state(s: PodState) -> i32 {
    match s {
        PodState::Ready => cri::PodSandboxState::SandboxReady as i32,
        PodState::Creating | PodState::NotReady => cri::PodSandboxState::SandboxNotready as i32,
    }
}

pub fn metadata(r: &PodRecord) -> cri::PodSandboxMetadata {
    cri::PodSandboxMetadata {
        name: r.name.clone(),
        uid: r.uid.clone(),
        namespace: r.namespace.clone(),
        attempt: r.attempt,
    }
}

pub fn sandbox(r: &PodRecord) -> cri::PodSandbox {
    cri::PodSandbox {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: state(r.state),
        created_at: r.created_at,
        labels: unsorted(&r.labels),
        annotations: unsorted(&r.annotations),
        runtime_handler: r.runtime_handler.clone(),
    }
}

pub fn status(r: &PodRecord) -> cri::PodSandboxStatus {
    cri::PodSandboxStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: state(r.state),
        created_at: r.created_at,
        network: Some(cri::PodSandboxNetworkStatus {
            ip: r.ip.map(|i| i.to_string()).unwrap_or_default(),
            additional_ips: r
                .additional_ips
                .iter()
                .map(|i| cri::PodIp { ip: i.to_string() })
                .collect(),
        }),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(cri::NamespaceOption {
                    network: mode_to_cri(r.modes.network),
                    pid: mode_to_cri(r.modes.pid),
                    ipc: mode_to_cri(r.modes.ipc),
                    target_id: String::new(),
                    userns_options: None,
                }),
            }),
        }),
        labels: unsorted(&r.labels),
        annotations: unsorted(&r.annotations),
        runtime_handler: r.runtime_handler.clone(),
    }
}

/// ListPodSandbox filter: id (full or prefix), state, and every label of the selector.
pub fn matches(r: &PodRecord, f: &cri::PodSandboxFilter) -> bool {
    if !f.id.is_empty() && !r.id.starts_with(&f.id) {
        return false;
    }
    if let Some(s) = &f.state
        && s.state != state(r.state)
    {
        return false;
    }
    f.label_selector
        .iter()
        .all(|(k, v)| r.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with(ns: cri::NamespaceOption) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(ns),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn namespace_modes() {
        let m = modes(&cri::PodSandboxConfig::default()).unwrap();
        assert_eq!(m.network, NamespaceMode::Pod);
        let m = modes(&cfg_with(cri::NamespaceOption {
            network: 2,
            pid: 1,
            ipc: 2,
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(
            (m.network, m.pid, m.ipc),
            (
                NamespaceMode::Node,
                NamespaceMode::Container,
                NamespaceMode::Node
            )
        );
        assert!(
            modes(&cfg_with(cri::NamespaceOption {
                pid: 3,
                ..Default::default()
            }))
            .is_err()
        );
    }

    #[test]
    fn user_namespace_options() {
        let map = |c, h, l| cri::IdMapping {
            container_id: c,
            host_id: h,
            length: l,
        };
        let opts = |mode: cri::NamespaceMode, uids, gids| cri::NamespaceOption {
            userns_options: Some(cri::UserNamespace {
                mode: mode as i32,
                uids,
                gids,
            }),
            ..Default::default()
        };
        let kubelet = vec![map(0, 65536, 65536)];
        assert_eq!(userns("pod", None), Ok(None));
        assert_eq!(
            userns("pod", Some(&cri::NamespaceOption::default())),
            Ok(None)
        );
        assert_eq!(
            userns("pod", Some(&opts(cri::NamespaceMode::Node, vec![], vec![]))),
            Ok(None)
        );
        let u = userns(
            "pod",
            Some(&opts(
                cri::NamespaceMode::Pod,
                kubelet.clone(),
                kubelet.clone(),
            )),
        )
        .unwrap()
        .unwrap();
        assert_eq!(u.host_uid(0), Some(65536));
        for (o, want) in [
            (
                opts(cri::NamespaceMode::Target, vec![], vec![]),
                "TARGET is not supported",
            ),
            (
                opts(cri::NamespaceMode::Container, vec![], vec![]),
                "CONTAINER is not supported",
            ),
            (
                opts(cri::NamespaceMode::Pod, vec![], kubelet.clone()),
                "uid mappings are missing",
            ),
            (
                opts(
                    cri::NamespaceMode::Pod,
                    kubelet.clone(),
                    vec![map(0, 1, 10), map(5, 100, 10)],
                ),
                "overlap",
            ),
            (
                opts(cri::NamespaceMode::Node, kubelet.clone(), kubelet.clone()),
                "NODE takes no",
            ),
        ] {
            let e = userns("pod", Some(&o)).unwrap_err();
            assert!(e.contains(want) && e.contains("userns_options"), "{e}");
        }
    }

    #[test]
    fn ports() {
        let mut c = cri::PodSandboxConfig {
            port_mappings: vec![
                cri::PortMapping {
                    protocol: 0,
                    container_port: 80,
                    host_port: 8080,
                    host_ip: String::new(),
                },
                cri::PortMapping {
                    protocol: 1,
                    container_port: 53,
                    host_port: 0,
                    host_ip: String::new(),
                },
                cri::PortMapping {
                    protocol: 2,
                    container_port: 9,
                    host_port: 9,
                    host_ip: "127.0.0.1".into(),
                },
            ],
            ..Default::default()
        };
        let p = port_mappings(&c).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].protocol, Protocol::Sctp);
        assert_eq!(p[1].host_ip, Some("127.0.0.1".parse().unwrap()));
        c.port_mappings[0].host_port = 70000;
        assert!(port_mappings(&c).unwrap_err().contains("70000"));
    }
}
