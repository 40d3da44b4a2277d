//! Capabilities and the masked / read-only /proc and /sys paths, as containerd's CRI sets
//! them (WithCapabilities, WithPrivileged, WithoutAmbientCaps, populateDefaultUnixSpec).

pub use oci_spec::runtime::Capability;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::SpecError;
use super::config::SecurityContext;

/// containerd's default capability set (defaultUnixCaps).
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows ("ALL", and privileged containers). Capabilities the
/// running kernel lacks must be skipped by whoever applies them (runc warns and skips).
pub const ALL_CAPS: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// Capabilities by their kernel number (`CAP_CHOWN` = 0 ... `CAP_CHECKPOINT_RESTORE` = 40).
const CAPS_BY_NUMBER: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The capabilities of a kernel capability mask (`CapBnd` of /proc/self/status, in hex),
/// as containerd builds `ALL` and privileged sets from the host's bounding set: what the
/// host cannot grant is never asked for. Bits oci-spec has no name for are skipped.
pub fn caps_from_mask(mask: u64) -> Vec<Capability> {
    CAPS_BY_NUMBER
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// containerd's default masked paths.
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// containerd's default read-only paths.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `chown`, `CAP_CHOWN`, `cap_chown` → CAP_CHOWN.
pub fn parse_capability(name: &str) -> Result<Capability, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse()
        .map_err(|_| SpecError::UnknownCapability(name.into()))
}

fn is_all(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("ALL")
}

/// The effective capability set: privileged ⇒ all; else the defaults, then (containerd's
/// order) add ALL, drop ALL, add each named, drop each named. A name both added and
/// dropped ends up dropped. Ambient capabilities are cleared (WithoutAmbientCaps), so
/// `add_ambient` is ignored as containerd does. "All" is `host_caps` (the host's bounding
/// set) when known, else every capability oci-spec knows.
pub fn capability_set(
    sc: &SecurityContext,
    host_caps: Option<&[Capability]>,
) -> Result<Vec<Capability>, SpecError> {
    let all = || {
        host_caps
            .map(<[Capability]>::to_vec)
            .unwrap_or(ALL_CAPS.to_vec())
    };
    if sc.privileged {
        return Ok(all());
    }
    let mut caps: Vec<Capability> = DEFAULT_CAPS.to_vec();
    let Some(c) = &sc.capabilities else {
        return Ok(caps);
    };
    if c.add.iter().any(|n| is_all(n)) {
        caps = all();
    }
    if c.drop.iter().any(|n| is_all(n)) {
        caps.clear();
    }
    for name in c.add.iter().filter(|n| !is_all(n)) {
        let cap = parse_capability(name)?;
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    for name in c.drop.iter().filter(|n| !is_all(n)) {
        let cap = parse_capability(name)?;
        caps.retain(|c| *c != cap);
    }
    Ok(caps)
}

/// `set` (from [`capability_set`]) on bounding, effective and permitted; inheritable and
/// ambient stay empty.
pub fn capabilities(set: &[Capability]) -> LinuxCapabilities {
    let set: Capabilities = set.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}

fn owned(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// Masked paths: none when privileged, the config's when given, else the defaults.
pub fn masked_paths(sc: &SecurityContext) -> Vec<String> {
    if sc.privileged {
        return Vec::new();
    }
    sc.masked_paths
        .clone()
        .unwrap_or_else(|| owned(&DEFAULT_MASKED_PATHS))
}

/// Read-only paths: none when privileged, the config's when given, else the defaults.
pub fn readonly_paths(sc: &SecurityContext) -> Vec<String> {
    if sc.privileged {
        return Vec::new();
    }
    sc.readonly_paths
        .clone()
        .unwrap_or_else(|| owned(&DEFAULT_READONLY_PATHS))
}

#[cfg(test)]
mod tests {
    use super::super::config::Capabilities as CriCaps;
    use super::*;

    fn with(add: &[&str], drop: &[&str]) -> SecurityContext {
        SecurityContext {
            capabilities: Some(CriCaps {
                add: add.iter().map(|s| s.to_string()).collect(),
                drop: drop.iter().map(|s| s.to_string()).collect(),
                add_ambient: vec!["NET_ADMIN".into()],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_without_capability_config() {
        let caps = capability_set(&SecurityContext::default(), None).unwrap();
        assert_eq!(caps, DEFAULT_CAPS.to_vec());
        assert!(!caps.contains(&Capability::SysAdmin));
    }

    #[test]
    fn add_and_drop_named() {
        let caps = capability_set(
            &with(&["sys_admin", "CAP_NET_ADMIN"], &["KILL", "cap_chown"]),
            None,
        )
        .unwrap();
        assert!(caps.contains(&Capability::SysAdmin));
        assert!(caps.contains(&Capability::NetAdmin));
        assert!(!caps.contains(&Capability::Kill));
        assert!(!caps.contains(&Capability::Chown));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn add_and_drop_same_ends_dropped() {
        let caps = capability_set(&with(&["NET_ADMIN"], &["NET_ADMIN"]), None).unwrap();
        assert!(!caps.contains(&Capability::NetAdmin));
    }

    #[test]
    fn all_handling() {
        let caps = capability_set(&with(&["ALL"], &["CHOWN"]), None).unwrap();
        assert_eq!(caps.len(), ALL_CAPS.len() - 1);
        assert!(!caps.contains(&Capability::Chown));
        let caps = capability_set(&with(&["NET_BIND_SERVICE"], &["all"]), None).unwrap();
        assert_eq!(caps, vec![Capability::NetBindService]);
        let caps = capability_set(&with(&["ALL"], &["ALL"]), None).unwrap();
        assert!(caps.is_empty());
    }

    #[test]
    fn unknown_capability_is_named() {
        let e = capability_set(&with(&["NOT_A_CAP"], &[]), None).unwrap_err();
        assert!(e.to_string().contains("NOT_A_CAP"));
    }

    #[test]
    fn sets_and_privileged() {
        let c = capabilities(&capability_set(&with(&["SYS_ADMIN"], &[]), None).unwrap());
        assert!(
            c.bounding()
                .as_ref()
                .unwrap()
                .contains(&Capability::SysAdmin)
        );
        assert_eq!(c.effective(), c.permitted());
        assert_eq!(c.bounding(), c.permitted());
        assert_eq!(c.inheritable(), &None);
        assert_eq!(c.ambient(), &None);
        let mut sc = with(&[], &["ALL"]);
        sc.privileged = true;
        assert_eq!(
            capabilities(&capability_set(&sc, None).unwrap())
                .bounding()
                .as_ref()
                .unwrap()
                .len(),
            41
        );
    }

    #[test]
    fn all_and_privileged_follow_the_host_bounding_set() {
        // CapBnd without CAP_SYS_RESOURCE (bit 24), as on a restricted host.
        let host = caps_from_mask(0x1ff_feff_ffff);
        assert_eq!(host.len(), 40);
        assert!(!host.contains(&Capability::SysResource));
        assert!(host.contains(&Capability::CheckpointRestore));
        let mut sc = SecurityContext {
            privileged: true,
            ..Default::default()
        };
        assert_eq!(capability_set(&sc, Some(&host)).unwrap(), host);
        sc.privileged = false;
        sc = with(&["ALL"], &["CHOWN"]);
        let caps = capability_set(&sc, Some(&host)).unwrap();
        assert_eq!(caps.len(), 39);
        assert!(!caps.contains(&Capability::SysResource));
        assert_eq!(caps_from_mask(0), Vec::<Capability>::new());
        assert_eq!(caps_from_mask(1), vec![Capability::Chown]);
    }

    #[test]
    fn masked_and_readonly_paths() {
        let mut sc = SecurityContext::default();
        assert!(masked_paths(&sc).contains(&"/proc/kcore".to_string()));
        assert!(masked_paths(&sc).contains(&"/sys/devices/virtual/powercap".to_string()));
        assert_eq!(readonly_paths(&sc), owned(&DEFAULT_READONLY_PATHS));
        sc.masked_paths = Some(vec!["/proc/x".into()]);
        sc.readonly_paths = Some(vec![]);
        assert_eq!(masked_paths(&sc), vec!["/proc/x".to_string()]);
        assert!(readonly_paths(&sc).is_empty());
        sc.privileged = true;
        assert!(masked_paths(&sc).is_empty());
        assert!(
            readonly_paths(&SecurityContext {
                privileged: true,
                ..Default::default()
            })
            .is_empty()
        );
    }
}
