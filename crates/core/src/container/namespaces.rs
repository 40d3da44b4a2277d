//! Namespaces: join the pod's pinned user (when it has one), network/IPC/UTS namespaces
//! (or stay in the node's), the PID namespace by mode, a new mount namespace, and a cgroup
//! namespace on v2.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::SpecError;
use super::config::PidMode;
use super::resources::CgroupVersion;
use crate::pod::record::{NamespaceMode, NamespaceModes, PodNamespaces};

fn ns(typ: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ);
    n.set_path(path);
    n
}

fn pinned(what: &'static str, path: &Option<PathBuf>) -> Result<Option<PathBuf>, SpecError> {
    path.clone()
        .map(Some)
        .ok_or(SpecError::MissingPodNamespace(what))
}

/// The container's PID mode: its own when given, else the pod's.
pub fn pid_mode(container: Option<PidMode>, pod: &NamespaceModes) -> PidMode {
    container.unwrap_or(match pod.pid {
        NamespaceMode::Pod => PidMode::Pod,
        NamespaceMode::Container => PidMode::Container,
        NamespaceMode::Node => PidMode::Node,
    })
}

/// The namespace list. A namespace left out is the node's (host network, IPC or PID).
/// `userns`: the pod has a user namespace of its own, which every container joins.
pub fn namespaces(
    modes: &NamespaceModes,
    pinned_ns: &PodNamespaces,
    pid: PidMode,
    cgroup: CgroupVersion,
    privileged: bool,
    userns: bool,
) -> Result<Vec<LinuxNamespace>, SpecError> {
    let mut out = Vec::new();
    if userns {
        out.push(ns(
            LinuxNamespaceType::User,
            pinned("user", &pinned_ns.user)?,
        ));
    }
    match pid {
        PidMode::Node => {}
        PidMode::Container => out.push(ns(LinuxNamespaceType::Pid, None)),
        PidMode::Pod => {
            let init = pinned_ns
                .init_pid
                .ok_or(SpecError::MissingPodNamespace("pid"))?;
            let path = PathBuf::from(format!("/proc/{init}/ns/pid"));
            out.push(ns(LinuxNamespaceType::Pid, Some(path)));
        }
        PidMode::Target { pid } => {
            if pid <= 0 {
                return Err(SpecError::Invalid {
                    field: "pid target",
                    value: pid.to_string(),
                    reason: "the target container has no running process".into(),
                });
            }
            let path = PathBuf::from(format!("/proc/{pid}/ns/pid"));
            out.push(ns(LinuxNamespaceType::Pid, Some(path)));
        }
    }
    match modes.ipc {
        NamespaceMode::Node => {}
        NamespaceMode::Pod => out.push(ns(LinuxNamespaceType::Ipc, pinned("ipc", &pinned_ns.ipc)?)),
        NamespaceMode::Container => out.push(ns(LinuxNamespaceType::Ipc, None)),
    }
    // UTS follows the network: host network means the node's hostname.
    if modes.network != NamespaceMode::Node {
        out.push(ns(LinuxNamespaceType::Uts, pinned("uts", &pinned_ns.uts)?));
    }
    out.push(ns(LinuxNamespaceType::Mount, None));
    match modes.network {
        NamespaceMode::Node => {}
        NamespaceMode::Pod => out.push(ns(
            LinuxNamespaceType::Network,
            pinned("network", &pinned_ns.net)?,
        )),
        NamespaceMode::Container => out.push(ns(LinuxNamespaceType::Network, None)),
    }
    // As containerd: hides the host's cgroup tree on v2; not on v1 or when privileged.
    if cgroup == CgroupVersion::V2 && !privileged {
        out.push(ns(LinuxNamespaceType::Cgroup, None));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(network: NamespaceMode, pid: NamespaceMode, ipc: NamespaceMode) -> NamespaceModes {
        NamespaceModes { network, pid, ipc }
    }

    fn pinned_all() -> PodNamespaces {
        PodNamespaces {
            net: Some("/run/berth/pods/p/ns/net".into()),
            ipc: Some("/run/berth/pods/p/ns/ipc".into()),
            uts: Some("/run/berth/pods/p/ns/uts".into()),
            user: Some("/run/berth/pods/p/ns/user".into()),
            init_pid: Some(4242),
            init_start_time: Some(1),
        }
    }

    fn find(list: &[LinuxNamespace], t: LinuxNamespaceType) -> Option<&LinuxNamespace> {
        list.iter().find(|n| n.typ() == t)
    }

    #[test]
    fn pod_namespaces_are_joined() {
        use NamespaceMode::*;
        let m = modes(Pod, Pod, Pod);
        let l = namespaces(
            &m,
            &pinned_all(),
            pid_mode(None, &m),
            CgroupVersion::V1,
            false,
            false,
        )
        .unwrap();
        let path = |t| find(&l, t).and_then(|n| n.path().clone());
        assert_eq!(
            path(LinuxNamespaceType::Network),
            Some("/run/berth/pods/p/ns/net".into())
        );
        assert_eq!(
            path(LinuxNamespaceType::Ipc),
            Some("/run/berth/pods/p/ns/ipc".into())
        );
        assert_eq!(
            path(LinuxNamespaceType::Uts),
            Some("/run/berth/pods/p/ns/uts".into())
        );
        assert_eq!(
            path(LinuxNamespaceType::Pid),
            Some("/proc/4242/ns/pid".into())
        );
        assert!(
            find(&l, LinuxNamespaceType::Mount)
                .unwrap()
                .path()
                .is_none()
        );
        assert!(find(&l, LinuxNamespaceType::Cgroup).is_none());
    }

    #[test]
    fn host_modes_leave_namespaces_out() {
        use NamespaceMode::*;
        let m = modes(Node, Node, Node);
        let l = namespaces(
            &m,
            &PodNamespaces::default(),
            pid_mode(None, &m),
            CgroupVersion::V1,
            false,
            false,
        )
        .unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].typ(), LinuxNamespaceType::Mount);
    }

    #[test]
    fn container_pid_and_cgroup_ns_on_v2() {
        use NamespaceMode::*;
        let m = modes(Pod, Container, Pod);
        let l = namespaces(
            &m,
            &pinned_all(),
            pid_mode(None, &m),
            CgroupVersion::V2,
            false,
            false,
        )
        .unwrap();
        assert!(find(&l, LinuxNamespaceType::Pid).unwrap().path().is_none());
        assert!(find(&l, LinuxNamespaceType::Cgroup).is_some());
        let l = namespaces(
            &m,
            &pinned_all(),
            PidMode::Container,
            CgroupVersion::V2,
            true,
            false,
        )
        .unwrap();
        assert!(find(&l, LinuxNamespaceType::Cgroup).is_none());
    }

    #[test]
    fn target_pid_and_missing_pins() {
        use NamespaceMode::*;
        let m = modes(Pod, Pod, Pod);
        let l = namespaces(
            &m,
            &pinned_all(),
            PidMode::Target { pid: 77 },
            CgroupVersion::V1,
            false,
            false,
        )
        .unwrap();
        assert_eq!(
            find(&l, LinuxNamespaceType::Pid).unwrap().path().clone(),
            Some("/proc/77/ns/pid".into())
        );
        let mut p = pinned_all();
        p.init_pid = None;
        let e = namespaces(&m, &p, PidMode::Pod, CgroupVersion::V1, false, false).unwrap_err();
        assert_eq!(e, SpecError::MissingPodNamespace("pid"));
        let mut p = pinned_all();
        p.net = None;
        let e = namespaces(&m, &p, PidMode::Pod, CgroupVersion::V1, false, false).unwrap_err();
        assert!(e.to_string().contains("network"));
    }

    #[test]
    fn the_pods_user_namespace_is_joined_first() {
        use NamespaceMode::*;
        let m = modes(Pod, Pod, Pod);
        let l = namespaces(
            &m,
            &pinned_all(),
            PidMode::Pod,
            CgroupVersion::V2,
            false,
            true,
        )
        .unwrap();
        assert_eq!(l[0].typ(), LinuxNamespaceType::User);
        assert_eq!(
            l[0].path().clone(),
            Some("/run/berth/pods/p/ns/user".into())
        );
        let mut p = pinned_all();
        p.user = None;
        let e = namespaces(&m, &p, PidMode::Pod, CgroupVersion::V2, false, true).unwrap_err();
        assert_eq!(e, SpecError::MissingPodNamespace("user"));
    }
}
