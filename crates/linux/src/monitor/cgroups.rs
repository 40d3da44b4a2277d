//! The container cgroup operations the monitor needs: the OCI runtime's helpers
//! ([`crate::runtime`]) plus listing a cgroup's processes for `kill --all`.

use std::path::Path;

use crate::cgroup::freezer::Freezer;
use crate::cgroup::{DEFAULT_ROOT, LinuxCgroups};

pub fn oom_kill_count(cgroups_path: Option<&str>) -> Option<u64> {
    crate::runtime::oom_kill_count(cgroups_path?)
}

pub fn remove(cgroups_path: Option<&str>) -> Result<(), String> {
    match cgroups_path {
        Some(p) => crate::runtime::remove_cgroup(p).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// Applies OCI `linux.resources` (JSON) to the container's cgroup.
pub fn apply(cgroups_path: Option<&str>, resources: &serde_json::Value) -> Result<(), String> {
    let Some(path) = cgroups_path else {
        return Err("the container has no cgroupsPath".into());
    };
    let res: oci_spec::runtime::LinuxResources = serde_json::from_value(resources.clone())
        .map_err(|e| format!("invalid linux.resources: {e}"))?;
    crate::runtime::apply_resources(path, &res).map_err(|e| e.to_string())
}

fn freezer(cgroups_path: Option<&str>) -> Result<Freezer, String> {
    let path = cgroups_path.ok_or("the container has no cgroupsPath")?;
    let cg = LinuxCgroups::new(DEFAULT_ROOT).map_err(|e| e.to_string())?;
    Freezer::locate(&cg, path).map_err(|e| e.to_string())
}

/// Freezes (`docker pause`) or thaws the container's cgroup.
pub fn set_frozen(cgroups_path: Option<&str>, frozen: bool) -> Result<(), String> {
    let f = freezer(cgroups_path)?;
    match frozen {
        true => f.freeze(),
        false => f.thaw(),
    }
    .map_err(|e| e.to_string())
}

/// Thaws a frozen cgroup so that a SIGKILL sent to it takes effect (a v1 frozen task
/// only dies once thawed). Nothing to do, and no error, for one that is not frozen.
pub fn thaw_if_frozen(cgroups_path: Option<&str>) {
    if let Ok(f) = freezer(cgroups_path)
        && f.is_frozen().unwrap_or(false)
    {
        let _ = f.thaw();
    }
}

/// PIDs in the container's cgroup (the first hierarchy that lists any).
pub fn procs(cgroups_path: Option<&str>) -> Vec<i32> {
    let Some(path) = cgroups_path else {
        return Vec::new();
    };
    let Ok(cg) = LinuxCgroups::new(DEFAULT_ROOT) else {
        return Vec::new();
    };
    let Ok(dirs) = cg.dirs(path) else {
        return Vec::new();
    };
    for dir in dirs {
        let pids = read_procs(&dir.join("cgroup.procs"));
        if !pids.is_empty() {
            return pids;
        }
    }
    Vec::new()
}

fn read_procs(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILLs every process left in the container's cgroup (children that outlived the main
/// process: in a shared PID namespace they are reparented to the pod's init, not killed with
/// it), until it is empty or ~2 s have passed. containerd's shim does the same when a
/// container's init exits.
pub fn kill_all(cgroups_path: Option<&str>) {
    for round in 0..200 {
        let pids = procs(cgroups_path);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = super::sys::kill(pid, libc::SIGKILL);
        }
        if round == 0 {
            thaw_if_frozen(cgroups_path);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `linux.cgroupsPath` of a bundle's config.json.
pub fn bundle_cgroups_path(bundle: &Path) -> Result<Option<String>, String> {
    let file = bundle.join("config.json");
    let text = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    Ok(spec
        .pointer("/linux/cgroupsPath")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}
