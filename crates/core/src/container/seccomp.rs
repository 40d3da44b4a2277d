//! Seccomp: the built-in RuntimeDefault profile, Unconfined, or a Localhost profile whose
//! JSON the caller read.
//!
//! RuntimeDefault is a deny list, not containerd's/Docker's allow list: default action
//! ALLOW, and EPERM for exactly the syscalls Docker's default profile refuses, each refused
//! only while the capability Docker gates it on is missing. The same syscalls are blocked
//! for the workloads that matter (namespace/mount/keyring/module/kexec/reboot/clock/bpf/
//! io_uring...), with a short table the container init can apply without libseccomp; the
//! price is that syscalls newer than this list are allowed rather than refused.

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::SpecError;
use super::config::SeccompProfile;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Refused whatever the capabilities: kernel keyring (not namespaced), kexec, obsolete or
/// host-wide calls, i386 vm86, io_uring (bypasses seccomp and audit).
const ALWAYS_DENIED: &[&str] = &[
    "add_key",
    "keyctl",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// Refused unless the container has one of the capabilities (Docker's `includes.caps`).
const GATED: &[(&[Capability], &[&str])] = &[
    (
        &[Capability::SysAdmin],
        &[
            "mount",
            "umount",
            "umount2",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "pivot_root",
            "setns",
            "unshare",
            "swapon",
            "swapoff",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "name_to_handle_at",
        ],
    ),
    (&[Capability::SysAdmin, Capability::Bpf], &["bpf"]),
    (
        &[Capability::SysAdmin, Capability::Perfmon],
        &["perf_event_open"],
    ),
    (&[Capability::SysBoot], &["reboot"]),
    (
        &[Capability::SysModule],
        &["init_module", "finit_module", "delete_module"],
    ),
    (&[Capability::SysPacct], &["acct"]),
    (&[Capability::SysPtrace], &["kcmp", "userfaultfd"]),
    (&[Capability::SysRawio], &["iopl", "ioperm"]),
    (
        &[Capability::SysTime],
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (&[Capability::SysTtyConfig], &["vhangup"]),
    (&[Capability::Syslog], &["syslog"]),
    (
        &[Capability::SysNice],
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "move_pages",
        ],
    ),
    (&[Capability::DacReadSearch], &["open_by_handle_at"]),
];

/// clone(2) flags that create namespaces; refused without CAP_SYS_ADMIN (one rule per flag:
/// OCI rules OR across entries and AND within one).
const CLONE_NS_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

const AF_VSOCK: u64 = 40;

fn syscall(names: &[&str], errno: u32, args: Option<Vec<LinuxSeccompArg>>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(LinuxSeccompAction::ScmpActErrno);
    s.set_errno_ret(Some(errno));
    s.set_args(args);
    s
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    // The builder defaults every field, so building cannot fail.
    b.build().unwrap_or_default()
}

fn architectures() -> Option<Vec<Arch>> {
    if cfg!(target_arch = "x86_64") {
        Some(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
    } else if cfg!(target_arch = "aarch64") {
        Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    } else {
        None
    }
}

/// The RuntimeDefault profile for a process holding `caps` (its effective set).
pub fn default_profile(caps: &[Capability]) -> LinuxSeccomp {
    let mut rules = vec![syscall(ALWAYS_DENIED, EPERM, None)];
    let mut denied: Vec<&str> = Vec::new();
    for (needs, names) in GATED {
        if !needs.iter().any(|c| caps.contains(c)) {
            denied.extend_from_slice(names);
        }
    }
    if !denied.is_empty() {
        rules.push(syscall(&denied, EPERM, None));
    }
    if !caps.contains(&Capability::SysAdmin) {
        for flag in CLONE_NS_FLAGS {
            let a = arg(0, flag, Some(flag), LinuxSeccompOperator::ScmpCmpMaskedEq);
            rules.push(syscall(&["clone"], EPERM, Some(vec![a])));
        }
        // clone3 takes its flags in a struct seccomp cannot read: make it look missing so
        // libc falls back to clone, which is filtered above (as Docker does).
        rules.push(syscall(&["clone3"], ENOSYS, None));
    }
    let vsock = arg(0, AF_VSOCK, None, LinuxSeccompOperator::ScmpCmpEq);
    rules.push(syscall(&["socket"], EPERM, Some(vec![vsock])));

    let mut s = LinuxSeccomp::default();
    s.set_default_action(LinuxSeccompAction::ScmpActAllow);
    s.set_architectures(architectures());
    s.set_syscalls(Some(rules));
    s
}

/// The seccomp section for `profile`: None (unconfined) when privileged, when no profile was
/// given, or for Unconfined; `localhost` is the JSON text of a Localhost profile.
pub fn seccomp(
    profile: Option<&SeccompProfile>,
    privileged: bool,
    caps: &[Capability],
    localhost: Option<&str>,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    if privileged {
        return Ok(None);
    }
    match profile {
        None | Some(SeccompProfile::Unconfined) => Ok(None),
        Some(SeccompProfile::RuntimeDefault) => Ok(Some(default_profile(caps))),
        Some(SeccompProfile::Localhost(name)) => {
            let err = |reason: String| SpecError::Seccomp {
                profile: name.clone(),
                reason,
            };
            if name.is_empty() {
                return Err(err("a Localhost profile needs localhost_ref".into()));
            }
            let text =
                localhost.ok_or_else(|| err("the profile's contents were not given".into()))?;
            let parsed: LinuxSeccomp = serde_json::from_str(text)
                .map_err(|e| err(format!("not a valid seccomp profile: {e}")))?;
            Ok(Some(parsed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::security::DEFAULT_CAPS;

    fn errno_of(p: &LinuxSeccomp, name: &str) -> Option<u32> {
        p.syscalls()
            .as_ref()?
            .iter()
            .find(|s| s.names().iter().any(|n| n == name) && s.args().is_none())
            .and_then(|s| s.errno_ret())
    }

    #[test]
    fn default_profile_blocks_escapes_without_caps() {
        let p = default_profile(&DEFAULT_CAPS);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        for name in [
            "unshare",
            "mount",
            "setns",
            "kexec_load",
            "reboot",
            "keyctl",
            "bpf",
            "init_module",
            "open_by_handle_at",
            "io_uring_setup",
        ] {
            assert_eq!(errno_of(&p, name), Some(EPERM), "{name}");
        }
        assert_eq!(errno_of(&p, "clone3"), Some(ENOSYS));
        assert_eq!(errno_of(&p, "read"), None);
        let clone_rules = p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.names() == &vec!["clone".to_string()])
            .count();
        assert_eq!(clone_rules, 7);
    }

    #[test]
    fn caps_lift_their_gates() {
        let mut caps = DEFAULT_CAPS.to_vec();
        caps.push(Capability::SysAdmin);
        caps.push(Capability::SysTime);
        let p = default_profile(&caps);
        assert_eq!(errno_of(&p, "mount"), None);
        assert_eq!(errno_of(&p, "unshare"), None);
        assert_eq!(errno_of(&p, "bpf"), None);
        assert_eq!(errno_of(&p, "clock_settime"), None);
        assert_eq!(errno_of(&p, "clone3"), None);
        // Never allowed, whatever the caps.
        assert_eq!(errno_of(&p, "kexec_load"), Some(EPERM));
        assert_eq!(errno_of(&p, "reboot"), Some(EPERM));
    }

    #[test]
    fn profile_selection() {
        let rd = SeccompProfile::RuntimeDefault;
        assert!(
            seccomp(Some(&rd), false, &DEFAULT_CAPS, None)
                .unwrap()
                .is_some()
        );
        assert!(
            seccomp(Some(&rd), true, &DEFAULT_CAPS, None)
                .unwrap()
                .is_none()
        );
        assert!(seccomp(None, false, &DEFAULT_CAPS, None).unwrap().is_none());
        let un = SeccompProfile::Unconfined;
        assert!(
            seccomp(Some(&un), false, &DEFAULT_CAPS, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn localhost_profile_is_parsed_or_named_in_errors() {
        let lh = SeccompProfile::Localhost("/var/lib/kubelet/seccomp/audit.json".into());
        let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#;
        let p = seccomp(Some(&lh), false, &DEFAULT_CAPS, Some(json))
            .unwrap()
            .unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        let e = seccomp(Some(&lh), false, &DEFAULT_CAPS, Some("{nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("audit.json"), "{e}");
        assert!(seccomp(Some(&lh), false, &DEFAULT_CAPS, None).is_err());
        let empty = SeccompProfile::Localhost(String::new());
        assert!(seccomp(Some(&empty), false, &DEFAULT_CAPS, Some(json)).is_err());
    }
}
