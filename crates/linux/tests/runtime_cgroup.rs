//! berth's OCI runtime, cgroups: the container's cgroup is created with its limits, joined
//! before exec, visible (read-only) inside, updatable live and removable. Root only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runtime_support.rs"]
mod runtime_support;

use std::path::{Path, PathBuf};

use berth_linux::cgroup::{CgroupMode, mode};
use berth_linux::runtime::{apply_resources, oom_kill_count, remove_cgroup};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxMemory, LinuxPids, LinuxResources};
use runtime_support::{Bundle, skip};

fn resources(memory: i64, pids: i64) -> LinuxResources {
    let mut r = LinuxResources::default();
    let mut m = LinuxMemory::default();
    m.set_limit(Some(memory));
    r.set_memory(Some(m));
    let mut p = LinuxPids::default();
    p.set_limit(pids);
    r.set_pids(Some(p));
    r
}

/// The host file of one limit (v1: per controller hierarchy; v2: the unified dir).
fn host_file(cgroups_path: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    match mode() {
        CgroupMode::V1 => Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(cgroups_path)
            .join(v1),
        CgroupMode::V2 => Path::new("/sys/fs/cgroup").join(cgroups_path).join(v2),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn limits_applied_joined_updated_and_removed() {
    if skip() {
        return;
    }
    let v1 = mode() == CgroupMode::V1;
    let inside = if v1 {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
         touch /sys/fs/cgroup/pids/x 2>/dev/null || echo cgroupfs-ro; cat /proc/self/cgroup"
    } else {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; \
         touch /sys/fs/cgroup/x 2>/dev/null || echo cgroupfs-ro; cat /proc/self/cgroup"
    };
    let mut b = Bundle::new(&["sh", "-c", inside]);
    b.linux(|l| {
        l.set_resources(Some(resources(64 << 20, 64)));
    });
    let cg = b.cgroups_path.clone();
    let mut c = b.create().unwrap();
    let mem = host_file(&cg, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = host_file(&cg, "pids", "pids.max", "pids.max");
    assert_eq!(read(&mem), (64u64 << 20).to_string());
    assert_eq!(read(&pids), "64");
    // The created (not yet started) process is already inside.
    let procs = read(&pids.with_file_name("cgroup.procs"));
    assert_eq!(procs, c.pid.to_string());
    assert_eq!(oom_kill_count(&cg), Some(0));

    // Live update, as UpdateContainerResources does.
    apply_resources(&cg, &resources(32 << 20, 32)).unwrap();
    assert_eq!(read(&mem), (32u64 << 20).to_string());
    assert_eq!(read(&pids), "32");

    c.start().unwrap();
    let (code, out, err) = c.wait();
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], (32u64 << 20).to_string());
    assert_eq!(lines[1], "32");
    assert_eq!(lines[2], "cgroupfs-ro");
    // cgroup namespace: the container's cgroup is its root.
    assert!(out.contains(":/\n"), "{out}");

    remove_cgroup(&cg).unwrap();
    assert!(!pids.parent().unwrap().exists());
    remove_cgroup(&cg).unwrap(); // idempotent
    assert_eq!(oom_kill_count(&cg), None);
}

/// runc's default device rules: deny all, mknod of anything, then the standard nodes.
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    serde_json::from_value(serde_json::json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"}
    ]))
    .unwrap()
}

#[test]
fn v1_device_rules() {
    if skip() || mode() != CgroupMode::V1 {
        return; // v2 device control needs eBPF, which berth does not do
    }
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; \
         echo x > /dev/berth-kmsg 2>/dev/null || echo kmsg-denied",
    ]);
    b.linux(|l| {
        let mut r = LinuxResources::default();
        r.set_devices(Some(default_device_rules()));
        l.set_resources(Some(r));
        let dev: oci_spec::runtime::LinuxDevice = serde_json::from_value(serde_json::json!(
            {"path": "/dev/berth-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438}
        ))
        .unwrap();
        l.set_devices(Some(vec![dev]));
    });
    let cg = b.cgroups_path.clone();
    let mut c = b.create().unwrap();
    let list = read(&host_file(&cg, "devices", "devices.list", ""));
    assert!(
        list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"),
        "{list}"
    );
    c.start().unwrap();
    let (code, out, err) = c.wait();
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.contains("null-ok") && out.contains("kmsg-denied"),
        "{out} {err}"
    );
}

#[test]
fn oom_kill_is_counted() {
    if skip() {
        return;
    }
    // A shell that keeps growing a variable past a 16 MiB limit.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "x=0123456789abcdef; while true; do x=$x$x; done",
    ]);
    b.linux(|l| {
        let mut r = resources(16 << 20, 64);
        let mut m = r.memory().unwrap();
        m.set_swap(Some(16 << 20));
        r.set_memory(Some(m));
        l.set_resources(Some(r));
    });
    let cg = b.cgroups_path.clone();
    let (code, _, err) = b.run();
    assert_eq!(code, 137, "killed by SIGKILL: {err}");
    assert!(oom_kill_count(&cg).unwrap_or(0) >= 1);
}
