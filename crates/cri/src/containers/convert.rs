//! CRI container messages ↔ berth's core container config and records. Pure functions.

use std::collections::HashMap;

use berth_api::cri;
use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::container::{
    Capabilities, ContainerConfig, Device, HugepageLimit, Mount, PidMode, Propagation, Resources,
    SeccompProfile, SecurityContext, SupplementalGroupsPolicy,
};

pub fn resources(r: &cri::LinuxContainerResources) -> Resources {
    Resources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|h| HugepageLimit {
                page_size: h.page_size.clone(),
                limit: h.limit,
            })
            .collect(),
        unified: r
            .unified
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
    }
}

fn seccomp(sc: &cri::LinuxContainerSecurityContext) -> Result<Option<SeccompProfile>, String> {
    if let Some(p) = &sc.seccomp {
        return match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => {
                Ok(Some(SeccompProfile::RuntimeDefault))
            }
            Ok(cri::security_profile::ProfileType::Unconfined) => {
                Ok(Some(SeccompProfile::Unconfined))
            }
            Ok(cri::security_profile::ProfileType::Localhost) => {
                Ok(Some(SeccompProfile::Localhost(p.localhost_ref.clone())))
            }
            Err(_) => Err(format!(
                "seccomp.profile_type {} is unknown",
                p.profile_type
            )),
        };
    }
    // The deprecated string form.
    #[allow(deprecated)]
    let path = sc.seccomp_profile_path.as_str();
    Ok(match path {
        "" => None,
        "runtime/default" | "docker/default" => Some(SeccompProfile::RuntimeDefault),
        "unconfined" => Some(SeccompProfile::Unconfined),
        p => match p.strip_prefix("localhost/") {
            Some(rest) => Some(SeccompProfile::Localhost(rest.to_string())),
            None => {
                return Err(format!(
                    "seccomp_profile_path {p:?} is not runtime/default, unconfined or localhost/<path>"
                ));
            }
        },
    })
}

/// `target_pid` resolves `namespace_options.pid = TARGET` (the target container's pid).
pub fn config(
    c: &cri::ContainerConfig,
    target_pid: Option<i32>,
) -> Result<ContainerConfig, String> {
    let meta = c.metadata.clone().unwrap_or_default();
    let linux = c.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let pid = match sc.namespace_options.as_ref() {
        None => None,
        Some(o) => Some(match cri::NamespaceMode::try_from(o.pid) {
            Ok(cri::NamespaceMode::Pod) => PidMode::Pod,
            Ok(cri::NamespaceMode::Container) => PidMode::Container,
            Ok(cri::NamespaceMode::Node) => PidMode::Node,
            Ok(cri::NamespaceMode::Target) => PidMode::Target {
                pid: target_pid.ok_or_else(|| {
                    format!(
                        "namespace_options.target_id {:?} is not a running container",
                        o.target_id
                    )
                })?,
            },
            Err(_) => return Err(format!("namespace_options.pid {} is unknown", o.pid)),
        }),
    };
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Ok(ContainerConfig {
        name: meta.name,
        attempt: meta.attempt,
        image: c
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default(),
        command: c.command.clone(),
        args: c.args.clone(),
        working_dir: c.working_dir.clone(),
        envs: c
            .envs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        mounts: c
            .mounts
            .iter()
            .map(|m| {
                let propagation = match cri::MountPropagation::try_from(m.propagation) {
                    Ok(cri::MountPropagation::PropagationHostToContainer) => {
                        Propagation::HostToContainer
                    }
                    Ok(cri::MountPropagation::PropagationBidirectional) => {
                        Propagation::Bidirectional
                    }
                    _ => Propagation::Private,
                };
                Mount {
                    container_path: m.container_path.clone(),
                    host_path: m.host_path.clone(),
                    readonly: m.readonly,
                    propagation,
                    recursive_read_only: m.recursive_read_only,
                    tmpfs: None,
                }
            })
            .collect(),
        devices: c
            .devices
            .iter()
            .map(|d| Device {
                container_path: d.container_path.clone(),
                host_path: d.host_path.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        tty: c.tty,
        resources: linux.resources.as_ref().map(resources).unwrap_or_default(),
        security: SecurityContext {
            capabilities: sc.capabilities.as_ref().map(|cap| Capabilities {
                add: cap.add_capabilities.clone(),
                drop: cap.drop_capabilities.clone(),
                add_ambient: cap.add_ambient_capabilities.clone(),
            }),
            privileged: sc.privileged,
            pid,
            run_as_user: sc.run_as_user.map(|v| v.value),
            run_as_group: sc.run_as_group.map(|v| v.value),
            run_as_username: sc.run_as_username.clone(),
            readonly_rootfs: sc.readonly_rootfs,
            supplemental_groups: sc.supplemental_groups.clone(),
            supplemental_groups_policy: match cri::SupplementalGroupsPolicy::try_from(
                sc.supplemental_groups_policy,
            ) {
                Ok(cri::SupplementalGroupsPolicy::Merge) => SupplementalGroupsPolicy::Merge,
                Ok(cri::SupplementalGroupsPolicy::Strict) => SupplementalGroupsPolicy::Strict,
                Err(_) => {
                    return Err(format!(
                        "supplemental_groups_policy {} is neither Merge (0) nor Strict (1)",
                        sc.supplemental_groups_policy
                    ));
                }
            },
            no_new_privs: sc.no_new_privs,
            masked_paths: list(&sc.masked_paths),
            readonly_paths: list(&sc.readonly_paths),
            seccomp: seccomp(&sc)?,
        },
    })
}

pub fn state(s: ContainerState) -> i32 {
    match s {
        ContainerState::Creating | ContainerState::Created => {
            cri::ContainerState::ContainerCreated as i32
        }
        ContainerState::Running => cri::ContainerState::ContainerRunning as i32,
        ContainerState::Exited => cri::ContainerState::ContainerExited as i32,
    }
}

pub fn unsorted(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn metadata(r: &ContainerRecord) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: r.name.clone(),
        attempt: r.attempt,
    }
}

fn image_spec(r: &ContainerRecord) -> cri::ImageSpec {
    cri::ImageSpec {
        image: r.image.clone(),
        ..Default::default()
    }
}

pub fn container(r: &ContainerRecord) -> cri::Container {
    cri::Container {
        id: r.id.clone(),
        pod_sandbox_id: r.pod_id.clone(),
        metadata: Some(metadata(r)),
        image: Some(image_spec(r)),
        image_ref: r.image_ref.clone(),
        state: state(r.state),
        created_at: r.created_at,
        labels: unsorted(&r.labels),
        annotations: unsorted(&r.annotations),
        image_id: r.image_id.clone(),
    }
}

pub fn status(r: &ContainerRecord) -> cri::ContainerStatus {
    let res = &r.config.resources;
    cri::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: state(r.state),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(image_spec(r)),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: unsorted(&r.labels),
        annotations: unsorted(&r.annotations),
        mounts: r
            .config
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.readonly,
                recursive_read_only: m.recursive_read_only,
                propagation: match m.propagation {
                    Propagation::Private => cri::MountPropagation::PropagationPrivate as i32,
                    Propagation::HostToContainer => {
                        cri::MountPropagation::PropagationHostToContainer as i32
                    }
                    Propagation::Bidirectional => {
                        cri::MountPropagation::PropagationBidirectional as i32
                    }
                },
                ..Default::default()
            })
            .collect(),
        log_path: r
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        resources: Some(cri::ContainerResources {
            linux: Some(cri::LinuxContainerResources {
                cpu_period: res.cpu_period,
                cpu_quota: res.cpu_quota,
                cpu_shares: res.cpu_shares,
                memory_limit_in_bytes: res.memory_limit_in_bytes,
                oom_score_adj: res.oom_score_adj,
                cpuset_cpus: res.cpuset_cpus.clone(),
                cpuset_mems: res.cpuset_mems.clone(),
                hugepage_limits: res
                    .hugepage_limits
                    .iter()
                    .map(|h| cri::HugepageLimit {
                        page_size: h.page_size.clone(),
                        limit: h.limit,
                    })
                    .collect(),
                unified: res
                    .unified
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                memory_swap_limit_in_bytes: res.memory_swap_limit_in_bytes,
            }),
            windows: None,
        }),
        image_id: r.image_id.clone(),
        user: r.user.as_ref().map(|u| cri::ContainerUser {
            linux: Some(cri::LinuxContainerUser {
                uid: u.uid.into(),
                gid: u.gid.into(),
                supplemental_groups: u.supplemental_groups.iter().map(|&g| g.into()).collect(),
            }),
        }),
    }
}

pub fn matches(r: &ContainerRecord, f: &cri::ContainerFilter) -> bool {
    if !f.id.is_empty() && !r.id.starts_with(&f.id) {
        return false;
    }
    if !f.pod_sandbox_id.is_empty() && !r.pod_id.starts_with(&f.pod_sandbox_id) {
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
