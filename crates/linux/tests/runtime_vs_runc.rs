//! berth's OCI runtime next to Debian's runc on the same bundle: the same capabilities,
//! no_new_privs, seccomp mode and effect, user, hostname, PID, /dev entries and mount
//! points. Root only; skipped without /usr/bin/runc.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runtime_support.rs"]
mod runtime_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp};
use runtime_support::{Bundle, skip};

const RUNC: &str = "/usr/bin/runc";

const SCRIPT: &str = "grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status; id; hostname; \
    echo pid=$$; unshare -n true 2>/dev/null; echo unshare=$?; ls -A /dev; \
    cut -d' ' -f2 /proc/self/mounts | sort";

/// Default deny, everything allowed but unshare.
fn deny_unshare() -> LinuxSeccomp {
    let names: Vec<String> = syscalls::Sysno::iter()
        .map(|s| s.name().to_string())
        .filter(|n| n != "unshare")
        .collect();
    serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    }))
    .unwrap()
}

/// Mounts only berth makes: host device nodes bound in (runc mknods them) and, on hybrid
/// hosts, the cgroup2 hierarchy.
fn berth_only(line: &str) -> bool {
    let dev = ["null", "zero", "full", "random", "urandom", "tty"];
    dev.iter().any(|d| line == format!("/dev/{d}")) || line == "/sys/fs/cgroup/unified"
}

#[test]
fn same_view_as_runc() {
    if skip() {
        return;
    }
    if !Path::new(RUNC).exists() {
        eprintln!("skipped: no {RUNC}");
        return;
    }
    let mut b = Bundle::new(&["sh", "-c", SCRIPT]);
    b.process(|p| {
        let set: std::collections::HashSet<Capability> =
            [Capability::Chown, Capability::Kill, Capability::Setuid]
                .into_iter()
                .collect();
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(set.clone()));
        c.set_effective(Some(set.clone()));
        c.set_permitted(Some(set));
        // Inheritable beyond the bounding set makes capset fail, in runc too.
        c.set_inheritable(Some(Default::default()));
        c.set_ambient(Some(Default::default()));
        p.set_capabilities(Some(c));
        p.set_no_new_privileges(Some(true));
        let mut u = p.user().clone();
        u.set_uid(0);
        u.set_gid(0);
        u.set_additional_gids(Some(vec![7]));
        p.set_user(u);
    });
    b.linux(|l| {
        l.set_seccomp(Some(deny_unshare()));
    });
    let (code, ours, err) = b.run();
    assert_eq!(code, 0, "berth: {err}");

    // runc: its own cgroup (absolute, so it is not placed below the test's cgroup) and
    // state dir; `runc run` deletes the container when it exits.
    let runc_cg = format!("/{}-runc", b.id);
    b.linux(|l| {
        l.set_cgroups_path(Some(PathBuf::from(&runc_cg)));
    });
    b.write();
    let state = b.path().join("runc-state");
    let out = Command::new(RUNC)
        .arg("--root")
        .arg(&state)
        .args([
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            &format!("{}-runc", b.id),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = berth_linux::runtime::remove_cgroup(&runc_cg);
    let theirs = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ours: Vec<&str> = ours.lines().filter(|l| !berth_only(l)).collect();
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(ours, theirs);
    assert!(
        ours.contains(&"unshare=1") && ours.contains(&"pid=1"),
        "{ours:?}"
    );
    // CHOWN (0), KILL (5), SETUID (7).
    assert!(ours.contains(&"CapEff:\t00000000000000a1"), "{ours:?}");
}
