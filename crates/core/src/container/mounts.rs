//! Mounts: the standard filesystems, the pod's files (hosts, resolv.conf, hostname, shm) and
//! the CRI mounts, filtered and ordered like containerd's WithMounts.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, Mount};

use super::SpecError;
use super::config::{self, ContainerConfig, Propagation};
use crate::pod::userns::{IdMapping, UserNamespace};

/// OCI's `linux.uidMappings` / `gidMappings` entries for `maps`.
pub fn oci_mappings(maps: &[IdMapping]) -> Result<Vec<LinuxIdMapping>, SpecError> {
    maps.iter()
        .map(|m| {
            LinuxIdMappingBuilder::default()
                .container_id(m.container_id)
                .host_id(m.host_id)
                .size(m.length)
                .build()
                .map_err(|e| SpecError::Invalid {
                    field: "user namespace mapping",
                    value: format!("{m:?}"),
                    reason: e.to_string(),
                })
        })
        .collect()
}

fn mount(dst: &str, typ: &str, src: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dst));
    m.set_typ(Some(typ.into()));
    m.set_source(Some(PathBuf::from(src)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// containerd's default Unix mounts without /run (WithoutRunMount), plus the read-only
/// cgroup filesystem the CRI adds; privileged containers get /sys and cgroups rw.
fn default_mounts(privileged: bool) -> Vec<Mount> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ]
}

/// Lexically cleaned absolute path (like Go's filepath.Clean); `field` names the input.
fn clean_abs(field: &'static str, p: &str) -> Result<PathBuf, SpecError> {
    let bad = |reason: &str| SpecError::Invalid {
        field,
        value: p.into(),
        reason: reason.into(),
    };
    if !p.starts_with('/') {
        return Err(bad("it must be an absolute path"));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Number of components: parents always have fewer than their children.
fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// All mounts of the container, parents before children, and the rootfs propagation the
/// CRI mounts need (`rshared` or `rslave`), if any. The caller must make sure the host
/// side of a bidirectional (host-to-container) mount is shared (shared or slave).
///
/// With a pod user namespace (`userns`), the CRI mounts carry OCI's `ridmap` option: the
/// runtime mounts them through a recursively idmapped clone with the container's user
/// namespace, so ids on disk show unchanged inside (root's files are root's) and what
/// the container writes lands with the same ids on disk, as Kubernetes expects of
/// volumes. The pod's own files (hosts, resolv.conf, hostname, shm) are plain binds:
/// readable (and shm writable) to anyone, and on tmpfs, which only Linux 6.3 idmaps.
pub fn mounts(
    config: &ContainerConfig,
    pod_dir: &Path,
    userns: Option<&UserNamespace>,
) -> Result<(Vec<Mount>, Option<String>), SpecError> {
    let sc = &config.security;
    let mut cri: Vec<(PathBuf, config::Mount)> = Vec::new();
    for m in &config.mounts {
        let dst = clean_abs("mount container_path", &m.container_path)?;
        if dst == Path::new("/") {
            return Err(SpecError::Invalid {
                field: "mount container_path",
                value: m.container_path.clone(),
                reason: "cannot mount over the container's root".into(),
            });
        }
        if m.host_path.is_empty() && m.tmpfs.is_none() {
            return Err(SpecError::Invalid {
                field: "mount host_path",
                value: m.host_path.clone(),
                reason: format!("empty host path for {}", m.container_path),
            });
        }
        if m.recursive_read_only && !m.readonly {
            return Err(SpecError::Invalid {
                field: "mount recursive_read_only",
                value: m.container_path.clone(),
                reason: "a recursive read-only mount must also be readonly".into(),
            });
        }
        if m.recursive_read_only && m.propagation != Propagation::Private {
            return Err(SpecError::Invalid {
                field: "mount recursive_read_only",
                value: m.container_path.clone(),
                reason: "a recursive read-only mount needs private propagation \
                         (mounts propagated into it later would be writable)"
                    .into(),
            });
        }
        cri.push((dst, m.clone()));
    }

    // The pod's files, unless the container brings its own (containerd's containerMounts).
    let pod_files = [
        ("/etc/hostname", "hostname", sc.readonly_rootfs),
        ("/etc/hosts", "hosts", sc.readonly_rootfs),
        ("/etc/resolv.conf", "resolv.conf", sc.readonly_rootfs),
        ("/dev/shm", "shm", false),
    ];
    let mut binds: Vec<(PathBuf, config::Mount, bool)> = Vec::new();
    for (dst, file, readonly) in pod_files {
        if !cri.iter().any(|(d, _)| d == Path::new(dst)) {
            binds.push((
                PathBuf::from(dst),
                config::Mount {
                    container_path: dst.into(),
                    host_path: pod_dir.join(file).to_string_lossy().into_owned(),
                    readonly,
                    propagation: Propagation::Private,
                    recursive_read_only: false,
                    tmpfs: None,
                },
                false,
            ));
        }
    }
    binds.extend(cri.into_iter().map(|(d, m)| (d, m, userns.is_some())));

    let dev_supplied = binds.iter().any(|(d, ..)| d == Path::new("/dev"));
    let mut all: Vec<Mount> = default_mounts(sc.privileged)
        .into_iter()
        .filter(|m| {
            let dst = m.destination();
            let overridden = binds.iter().any(|(d, ..)| d == dst);
            let under_dev = dev_supplied && dst.starts_with("/dev");
            !overridden && !under_dev
        })
        .collect();

    let mut propagation: Option<String> = None;
    for (dst, m, idmap) in binds {
        let prop = match m.propagation {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => {
                if propagation.as_deref() != Some("rshared") {
                    propagation = Some("rslave".into());
                }
                "rslave"
            }
            Propagation::Bidirectional => {
                propagation = Some("rshared".into());
                "rshared"
            }
        };
        let rw = if m.readonly { "ro" } else { "rw" };
        if let Some(opts) = &m.tmpfs {
            // The caller's options last: they win over the defaults.
            let mut t = mount(&dst.to_string_lossy(), "tmpfs", "tmpfs", &[rw, prop]);
            let mut options = t.options().clone().unwrap_or_default();
            options.extend(opts.iter().cloned());
            t.set_options(Some(options));
            all.push(t);
            continue;
        }
        let mut b = Mount::default();
        b.set_destination(dst);
        b.set_typ(Some("bind".into()));
        b.set_source(Some(PathBuf::from(&m.host_path)));
        let mut options = vec!["rbind".to_string(), prop.into(), rw.into()];
        if m.recursive_read_only {
            // OCI's `rro`: the runtime applies MOUNT_ATTR_RDONLY with AT_RECURSIVE.
            options.push("rro".into());
        }
        if idmap {
            options.push("ridmap".into());
        }
        b.set_options(Some(options));
        all.push(b);
    }
    // Stable: equal depths keep their order (standard mounts, pod files, CRI mounts).
    all.sort_by_key(|m| depth(m.destination()));
    Ok((all, propagation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci_free_mapping() -> Vec<IdMapping> {
        vec![IdMapping {
            container_id: 0,
            host_id: 65536,
            length: 65536,
        }]
    }

    fn cri(dst: &str, src: &str, ro: bool, p: Propagation) -> config::Mount {
        config::Mount {
            container_path: dst.into(),
            host_path: src.into(),
            readonly: ro,
            propagation: p,
            recursive_read_only: false,
            tmpfs: None,
        }
    }

    fn dsts(ms: &[Mount]) -> Vec<String> {
        ms.iter()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect()
    }

    fn find<'a>(ms: &'a [Mount], dst: &str) -> &'a Mount {
        ms.iter()
            .find(|m| m.destination() == Path::new(dst))
            .expect("mount present")
    }

    fn opts(m: &Mount) -> Vec<String> {
        m.options().clone().unwrap_or_default()
    }

    #[test]
    fn standard_and_pod_mounts() {
        let (ms, prop) =
            mounts(&ContainerConfig::default(), Path::new("/run/pods/p1"), None).unwrap();
        assert_eq!(prop, None);
        assert_eq!(
            dsts(&ms),
            [
                "/proc",
                "/dev",
                "/sys",
                "/dev/pts",
                "/dev/mqueue",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/dev/shm",
                "/sys/fs/cgroup"
            ]
        );
        let shm = find(&ms, "/dev/shm");
        assert_eq!(shm.source().as_deref(), Some(Path::new("/run/pods/p1/shm")));
        assert_eq!(opts(shm), ["rbind", "rprivate", "rw"]);
        assert!(opts(find(&ms, "/sys")).contains(&"ro".to_string()));
        assert!(opts(find(&ms, "/sys/fs/cgroup")).contains(&"ro".to_string()));
        assert_eq!(opts(find(&ms, "/etc/hosts")), ["rbind", "rprivate", "rw"]);
    }

    #[test]
    fn readonly_rootfs_makes_pod_files_ro_but_not_shm() {
        let mut c = ContainerConfig::default();
        c.security.readonly_rootfs = true;
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        assert_eq!(opts(find(&ms, "/etc/resolv.conf"))[2], "ro");
        assert_eq!(opts(find(&ms, "/dev/shm"))[2], "rw");
    }

    #[test]
    fn privileged_sys_is_rw() {
        let mut c = ContainerConfig::default();
        c.security.privileged = true;
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        assert!(opts(find(&ms, "/sys")).contains(&"rw".to_string()));
        assert!(opts(find(&ms, "/sys/fs/cgroup")).contains(&"rw".to_string()));
    }

    #[test]
    fn container_mount_over_pod_file_wins() {
        let c = ContainerConfig {
            mounts: vec![cri(
                "/etc/hosts/",
                "/custom/hosts",
                true,
                Propagation::Private,
            )],
            ..Default::default()
        };
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        let hosts: Vec<&Mount> = ms
            .iter()
            .filter(|m| m.destination() == Path::new("/etc/hosts"))
            .collect();
        assert_eq!(hosts.len(), 1);
        assert_eq!(
            hosts[0].source().as_deref(),
            Some(Path::new("/custom/hosts"))
        );
        assert_eq!(opts(hosts[0]), ["rbind", "rprivate", "ro"]);
    }

    #[test]
    fn propagation_options_and_rootfs_propagation() {
        let mut c = ContainerConfig {
            mounts: vec![cri("/a", "/h/a", false, Propagation::HostToContainer)],
            ..Default::default()
        };
        let (ms, prop) = mounts(&c, Path::new("/p"), None).unwrap();
        assert_eq!(opts(find(&ms, "/a")), ["rbind", "rslave", "rw"]);
        assert_eq!(prop.as_deref(), Some("rslave"));

        c.mounts = vec![
            cri("/b", "/h/b", false, Propagation::Bidirectional),
            cri("/a", "/h/a", true, Propagation::HostToContainer),
        ];
        let (ms, prop) = mounts(&c, Path::new("/p"), None).unwrap();
        assert_eq!(opts(find(&ms, "/b")), ["rbind", "rshared", "rw"]);
        assert_eq!(opts(find(&ms, "/a")), ["rbind", "rslave", "ro"]);
        assert_eq!(prop.as_deref(), Some("rshared"));
    }

    #[test]
    fn parents_mount_before_children() {
        let c = ContainerConfig {
            mounts: vec![
                cri("/data/x/y", "/h/y", false, Propagation::Private),
                cri("/data", "/h/data", false, Propagation::Private),
                cri("/data/x", "/h/x", false, Propagation::Private),
            ],
            ..Default::default()
        };
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        let d = dsts(&ms);
        let pos = |p: &str| d.iter().position(|x| x == p).expect("present");
        assert!(pos("/data") < pos("/data/x"));
        assert!(pos("/data/x") < pos("/data/x/y"));
        assert!(pos("/sys") < pos("/sys/fs/cgroup"));
    }

    #[test]
    fn dev_mount_drops_standard_dev_children() {
        let c = ContainerConfig {
            mounts: vec![cri("/dev", "/dev", false, Propagation::Private)],
            ..Default::default()
        };
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        let d = dsts(&ms);
        assert!(!d.contains(&"/dev/pts".to_string()));
        assert!(!d.contains(&"/dev/mqueue".to_string()));
        // The pod's shm is a bind of the pod, not a standard mount: it stays, after /dev.
        assert_eq!(find(&ms, "/dev").typ().as_deref(), Some("bind"));
        assert!(d.contains(&"/dev/shm".to_string()));
    }

    #[test]
    fn tmpfs_mounts() {
        let c = ContainerConfig {
            mounts: vec![config::Mount {
                container_path: "/run/x".into(),
                readonly: true,
                tmpfs: Some(vec!["nosuid".into(), "size=1m".into()]),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        let t = find(&ms, "/run/x");
        assert_eq!(t.typ().as_deref(), Some("tmpfs"));
        assert_eq!(opts(t), ["ro", "rprivate", "nosuid", "size=1m"]);
    }

    #[test]
    fn recursive_read_only_needs_readonly_and_private() {
        let rro = |ro, p| config::Mount {
            recursive_read_only: true,
            ..cri("/data", "/h/data", ro, p)
        };
        let mut c = ContainerConfig {
            mounts: vec![rro(true, Propagation::Private)],
            ..Default::default()
        };
        let (ms, _) = mounts(&c, Path::new("/p"), None).unwrap();
        assert_eq!(opts(find(&ms, "/data")), ["rbind", "rprivate", "ro", "rro"]);
        // In a pod user namespace, CRI mounts are idmapped; the pod's own files are not.
        let u = UserNamespace::new(oci_free_mapping(), oci_free_mapping()).unwrap();
        let (ms, _) = mounts(&c, Path::new("/p"), Some(&u)).unwrap();
        assert_eq!(
            opts(find(&ms, "/data")),
            ["rbind", "rprivate", "ro", "rro", "ridmap"]
        );
        assert_eq!(opts(find(&ms, "/etc/hosts")), ["rbind", "rprivate", "rw"]);
        c.mounts = vec![rro(false, Propagation::Private)];
        let e = mounts(&c, Path::new("/p"), None).unwrap_err().to_string();
        assert!(
            e.contains("recursive_read_only") && e.contains("readonly"),
            "{e}"
        );
        c.mounts = vec![rro(true, Propagation::HostToContainer)];
        let e = mounts(&c, Path::new("/p"), None).unwrap_err().to_string();
        assert!(e.contains("private propagation"), "{e}");
    }

    #[test]
    fn bad_mounts_are_errors() {
        let mut c = ContainerConfig {
            mounts: vec![cri("rel", "/h", false, Propagation::Private)],
            ..Default::default()
        };
        let e = mounts(&c, Path::new("/p"), None).unwrap_err().to_string();
        assert!(e.contains("container_path") && e.contains("rel"), "{e}");
        c.mounts = vec![cri("/x", "", false, Propagation::Private)];
        assert!(
            mounts(&c, Path::new("/p"), None)
                .unwrap_err()
                .to_string()
                .contains("host_path")
        );
        c.mounts = vec![cri("/x/..", "/h", false, Propagation::Private)];
        assert!(mounts(&c, Path::new("/p"), None).is_err());
    }
}
