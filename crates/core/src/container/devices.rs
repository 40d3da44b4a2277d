//! Devices: the CRI devices (looked up on the host by the caller) as spec device nodes plus
//! device-cgroup allow rules, after a deny-all and runc's default allow list.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use serde::{Deserialize, Serialize};

use super::SpecError;
use super::config::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Char,
    Block,
}

/// A device node on the host, as the caller found it (stat of the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Host path of the node. For a CRI device whose `host_path` is a directory, the
    /// caller passes every node below it; they appear below `container_path`.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: i64,
    pub minor: i64,
    /// Permission bits (st_mode & 0o7777).
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn rule(
    kind: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(kind));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.into()));
    r
}

/// Deny everything, then runc's default allow list: mknod of any node, the standard
/// character devices (null, zero, full, random, urandom, tty, console, ptmx), the pts
/// slaves and /dev/net/tun.
pub fn default_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    let mut deny = LinuxDeviceCgroup::default();
    deny.set_allow(false);
    deny.set_access(Some("rwm".into()));
    let mut rules = vec![deny, rule(C, None, None, "m"), rule(B, None, None, "m")];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(rule(C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(C, Some(136), None, "rwm"));
    rules.push(rule(C, Some(10), Some(200), "rwm"));
    rules
}

/// Allow every device (privileged containers).
pub fn allow_all() -> Vec<LinuxDeviceCgroup> {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_access(Some("rwm".into()));
    vec![r]
}

fn node(container_path: PathBuf, n: &DeviceNode) -> LinuxDevice {
    let mut d = LinuxDevice::default();
    d.set_path(container_path);
    d.set_typ(match n.kind {
        DeviceKind::Char => LinuxDeviceType::C,
        DeviceKind::Block => LinuxDeviceType::B,
    });
    d.set_major(n.major);
    d.set_minor(n.minor);
    d.set_file_mode(Some(n.file_mode));
    d.set_uid(Some(n.uid));
    d.set_gid(Some(n.gid));
    d
}

fn permissions(d: &Device) -> Result<String, SpecError> {
    if d.permissions.is_empty() {
        return Ok("rwm".into());
    }
    let ok = d.permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if !ok {
        return Err(SpecError::Invalid {
            field: "device permissions",
            value: d.permissions.clone(),
            reason: format!("only r, w and m are allowed (device {})", d.host_path),
        });
    }
    Ok(d.permissions.clone())
}

/// Spec device nodes and their cgroup rules. `host_devices` (every node of the host's /dev)
/// are added as they are for privileged containers, as containerd's WithHostDevices does.
pub fn devices(
    requested: &[Device],
    nodes: &[DeviceNode],
    privileged: bool,
    host_devices: &[DeviceNode],
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let mut out: Vec<LinuxDevice> = Vec::new();
    let mut rules = if privileged {
        for n in host_devices {
            out.push(node(n.path.clone(), n));
        }
        allow_all()
    } else {
        default_rules()
    };
    for d in requested {
        if !d.container_path.starts_with('/') {
            return Err(SpecError::Invalid {
                field: "device container_path",
                value: d.container_path.clone(),
                reason: "it must be an absolute path".into(),
            });
        }
        let access = permissions(d)?;
        let host = Path::new(&d.host_path);
        let found: Vec<(PathBuf, &DeviceNode)> = nodes
            .iter()
            .filter_map(|n| {
                let rel = n.path.strip_prefix(host).ok()?;
                let dst = if rel.as_os_str().is_empty() {
                    PathBuf::from(&d.container_path)
                } else {
                    Path::new(&d.container_path).join(rel)
                };
                Some((dst, n))
            })
            .collect();
        if found.is_empty() {
            return Err(SpecError::DeviceNotFound(d.host_path.clone()));
        }
        for (dst, n) in found {
            out.retain(|o| o.path() != &dst);
            out.push(node(dst, n));
            if !privileged {
                let kind = match n.kind {
                    DeviceKind::Char => LinuxDeviceType::C,
                    DeviceKind::Block => LinuxDeviceType::B,
                };
                rules.push(rule(kind, Some(n.major), Some(n.minor), &access));
            }
        }
    }
    Ok((out, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(path: &str, kind: DeviceKind, major: i64, minor: i64) -> DeviceNode {
        DeviceNode {
            path: path.into(),
            kind,
            major,
            minor,
            file_mode: 0o660,
            uid: 0,
            gid: 6,
        }
    }

    fn dev(host: &str, ctr: &str, perms: &str) -> Device {
        Device {
            host_path: host.into(),
            container_path: ctr.into(),
            permissions: perms.into(),
        }
    }

    #[test]
    fn default_rules_deny_then_allow_standard() {
        let r = default_rules();
        assert!(!r[0].allow());
        assert_eq!(r[0].typ(), None);
        let s: Vec<String> = r[1..].iter().map(|r| r.to_string()).collect();
        for want in [
            "c 1:3 rwm",
            "c 1:9 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
            "c *:* m",
            "b *:* m",
        ] {
            assert!(s.contains(&want.to_string()), "{want} in {s:?}");
        }
    }

    #[test]
    fn cri_device_becomes_node_and_rule() {
        let nodes = [n("/dev/sdb", DeviceKind::Block, 8, 16)];
        let (devs, rules) =
            devices(&[dev("/dev/sdb", "/dev/xvdb", "rw")], &nodes, false, &[]).unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].path(), Path::new("/dev/xvdb"));
        assert_eq!(devs[0].typ(), LinuxDeviceType::B);
        assert_eq!((devs[0].major(), devs[0].minor()), (8, 16));
        assert_eq!(devs[0].gid(), Some(6));
        assert_eq!(
            rules.last().map(|r| r.to_string()).as_deref(),
            Some("b 8:16 rw")
        );
    }

    #[test]
    fn directory_device_expands() {
        let nodes = [
            n("/dev/snd/pcm0", DeviceKind::Char, 116, 2),
            n("/dev/snd/ctl", DeviceKind::Char, 116, 3),
            n("/dev/sndx", DeviceKind::Char, 1, 1),
        ];
        let (devs, rules) =
            devices(&[dev("/dev/snd", "/dev/snd", "")], &nodes, false, &[]).unwrap();
        let paths: Vec<&Path> = devs.iter().map(|d| d.path().as_path()).collect();
        assert_eq!(
            paths,
            [Path::new("/dev/snd/pcm0"), Path::new("/dev/snd/ctl")]
        );
        assert_eq!(
            rules.last().map(|r| r.to_string()).as_deref(),
            Some("c 116:3 rwm")
        );
    }

    #[test]
    fn device_errors_name_the_input() {
        let e = devices(&[dev("/dev/nope", "/dev/nope", "rwm")], &[], false, &[]).unwrap_err();
        assert!(e.to_string().contains("/dev/nope"));
        let nodes = [n("/dev/fuse", DeviceKind::Char, 10, 229)];
        let e = devices(&[dev("/dev/fuse", "/dev/fuse", "rwx")], &nodes, false, &[]).unwrap_err();
        assert!(e.to_string().contains("rwx"));
        let e = devices(&[dev("/dev/fuse", "fuse", "")], &nodes, false, &[]).unwrap_err();
        assert!(e.to_string().contains("container_path"));
    }

    #[test]
    fn privileged_gets_host_devices_and_allow_all() {
        let host = [
            n("/dev/fuse", DeviceKind::Char, 10, 229),
            n("/dev/sda", DeviceKind::Block, 8, 0),
        ];
        let (devs, rules) =
            devices(&[dev("/dev/fuse", "/dev/fuse", "r")], &host, true, &host).unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(rules.len(), 1);
        assert!(rules[0].allow());
        assert_eq!(rules[0].to_string(), "a *:* rwm");
    }
}
