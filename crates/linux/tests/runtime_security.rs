//! berth's OCI runtime, confinement: capabilities, no_new_privs, seccomp, read-only rootfs
//! and bind mounts, masked paths. Root only (skipped otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runtime_support.rs"]
mod runtime_support;

use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp};
use runtime_support::{Bundle, host_dir, skip};

fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn caps(list: &[Capability]) -> LinuxCapabilities {
    let set: std::collections::HashSet<Capability> = list.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set.clone()));
    c.set_inheritable(Some(Default::default()));
    c.set_ambient(Some(Default::default()));
    c
}

#[test]
fn capabilities_and_no_new_privs() {
    if skip() {
        return;
    }
    let mut b = Bundle::new(&["cat", "/proc/self/status"]);
    b.process(|p| {
        p.set_capabilities(Some(caps(&[
            Capability::Chown,
            Capability::Kill,
            Capability::NetBindService,
        ])));
        p.set_no_new_privileges(Some(true));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    // CHOWN (0), KILL (5), NET_BIND_SERVICE (10).
    assert_eq!(status_field(&out, "CapEff"), "0000000000000421");
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000421");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000421");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");

    // A non-root user keeps only ambient capabilities across execve.
    let mut b = Bundle::new(&["cat", "/proc/self/status"]);
    b.process(|p| {
        let mut c = caps(&[Capability::Kill, Capability::Chown]);
        let amb: std::collections::HashSet<_> = [Capability::Kill].into_iter().collect();
        c.set_inheritable(Some(amb.clone()));
        c.set_ambient(Some(amb));
        p.set_capabilities(Some(c));
        let mut u = p.user().clone();
        u.set_uid(1000);
        u.set_gid(1000);
        p.set_user(u);
        p.set_no_new_privileges(Some(false));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000020");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000020");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
}

/// Default deny (EPERM), every syscall this arch knows allowed except unshare.
fn deny_unshare() -> LinuxSeccomp {
    let names: Vec<String> = syscalls::Sysno::iter()
        .map(|s| s.name().to_string())
        .filter(|n| n != "unshare")
        .collect();
    serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
        ]
    }))
    .unwrap()
}

#[test]
fn seccomp_default_deny_blocks_unshare() {
    if skip() {
        return;
    }
    // With no_new_privs, and without it (the filter is then loaded with a CAP_SYS_ADMIN
    // the process does not keep).
    for nnp in [true, false] {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "echo before; unshare -n true; echo rc=$?; grep -E '^(CapEff|Seccomp):' /proc/self/status",
        ]);
        b.process(|p| {
            p.set_no_new_privileges(Some(nnp));
            p.set_capabilities(Some(caps(&[Capability::Kill, Capability::SysChroot])));
        });
        b.linux(|l| {
            l.set_seccomp(Some(deny_unshare()));
        });
        let (code, out, err) = b.run();
        assert_eq!(code, 0, "nnp {nnp}: stderr: {err}");
        assert!(out.starts_with("before\n"), "{out}");
        assert!(out.contains("rc=1"), "unshare must fail: {out} {err}");
        assert!(err.contains("Operation not permitted"), "{err}");
        assert!(out.contains("Seccomp:\t2"), "{out}");
        // KILL (5) and SYS_CHROOT (18); no leftover CAP_SYS_ADMIN.
        assert!(
            out.contains("CapEff:\t0000000000040020"),
            "nnp {nnp}: {out}"
        );
    }
}

#[test]
fn seccomp_errno_rule_with_arguments() {
    if skip() {
        return;
    }
    // Default allow; personality(0xffffffff) (a query) gets ENOSYS... only with that arg.
    let mut b = Bundle::new(&["sh", "-c", "unshare -u true; echo rc=$?; echo ok"]);
    let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
            "args": [{"index": 0, "value": 0x0400_0000u64, "valueTwo": 0x0400_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]}]
    }))
    .unwrap();
    b.linux(|l| {
        l.set_seccomp(Some(profile));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    // CLONE_NEWUTS is 0x04000000: blocked with ENOSYS.
    assert!(out.contains("rc=1"), "{out}");
    assert!(err.contains("not implemented"), "{err}");
}

#[test]
fn readonly_rootfs_ro_bind_and_masked_paths() {
    if skip() {
        return;
    }
    let host = host_dir();
    std::fs::write(host.path().join("file"), "from host").unwrap();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
         cat /data/file; echo; touch /data/y 2>/dev/null && echo data-rw || echo data-ro; \
         touch /tmp/z && echo tmp-rw; \
         echo secret=$(cat /etc/secret); ls -A /etc/hidden; \
         touch /proc/sys/kernel/berth 2>/dev/null; echo sysrq=$(cat /proc/sys/kernel/hostname)",
    ]);
    std::fs::write(b.rootfs().join("etc/secret"), "s3cret").unwrap();
    std::fs::create_dir_all(b.rootfs().join("etc/hidden")).unwrap();
    std::fs::write(b.rootfs().join("etc/hidden/f"), "x").unwrap();
    let mut root = b.spec.root().clone().unwrap();
    root.set_readonly(Some(true));
    b.spec.set_root(Some(root));
    b.add_mount(
        "/data",
        "bind",
        host.path().to_str().unwrap(),
        &["rbind", "ro"],
    );
    b.add_mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev"]);
    b.linux(|l| {
        let mut masked = l.masked_paths().clone().unwrap_or_default();
        masked.push("/etc/secret".into());
        masked.push("/etc/hidden".into());
        l.set_masked_paths(Some(masked));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    let expect = [
        "root-ro",
        "from host",
        "data-ro",
        "tmp-rw",
        "secret=",
        "sysrq=berth-rt",
    ];
    for e in expect {
        assert!(
            out.lines().any(|l| l == e),
            "missing {e:?} in:\n{out}\nstderr: {err}"
        );
    }
    assert!(!out.contains("\nf\n"), "masked dir is empty: {out}");
}
