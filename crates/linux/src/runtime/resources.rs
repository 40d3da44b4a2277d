//! `linux.resources` written to cgroupfs files, v1 and v2.
//!
//! Not applied: blkio throttling on v2 (only io.weight), network classid/priorities, rdma,
//! kernel memory, realtime CPU. v2 device access control needs an eBPF program attached to
//! the cgroup (BPF_CGROUP_DEVICE), which berth does not build (yet): on v2 the device rules
//! are skipped, so the container's device nodes (only those the spec creates, on a private
//! /dev) are its only device limit. v1 device rules are written to devices.allow/deny.

use std::path::Path;

use berth_core::runtime::RuntimeError;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxMemory, LinuxResources};

use super::cgroup::ContainerCgroup;

fn write(dir: &Path, file: &str, value: impl ToString) -> Result<(), RuntimeError> {
    let path = dir.join(file);
    let value = value.to_string();
    std::fs::write(&path, &value).map_err(|e| {
        RuntimeError::failed(
            "cgroup resources",
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

/// The controller's dir, or an error naming the limit that cannot be applied.
fn need<'a>(cg: &'a ContainerCgroup, controller: &str) -> Result<&'a Path, RuntimeError> {
    cg.controller_dir(controller).ok_or_else(|| {
        RuntimeError::failed(
            "cgroup resources",
            format!("the {controller} controller is not mounted"),
        )
    })
}

pub(crate) fn apply_v1(cg: &ContainerCgroup, r: &LinuxResources) -> Result<(), RuntimeError> {
    if let Some(cpu) = r.cpu() {
        if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
            let dir = need(cg, "cpu")?;
            if let Some(s) = cpu.shares().filter(|s| *s > 0) {
                write(dir, "cpu.shares", s)?;
            }
            if let Some(p) = cpu.period().filter(|p| *p > 0) {
                write(dir, "cpu.cfs_period_us", p)?;
            }
            if let Some(q) = cpu.quota().filter(|q| *q != 0) {
                write(dir, "cpu.cfs_quota_us", if q < 0 { -1 } else { q })?;
            }
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(need(cg, "cpuset")?, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            write(need(cg, "cpuset")?, "cpuset.mems", mems)?;
        }
    }
    if let Some(mem) = r.memory() {
        memory_v1(cg, mem)?;
    }
    if let Some(pids) = r.pids() {
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        write(need(cg, "pids")?, "pids.max", v)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
        write(need(cg, "hugetlb")?, &file, h.limit())?;
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            write(need(cg, "blkio")?, "blkio.weight", w)?;
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        for (file, devs) in throttles {
            for d in devs.iter().flatten() {
                let line = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                write(need(cg, "blkio")?, file, line)?;
            }
        }
    }
    if let Some(devices) = r.devices().as_ref().filter(|d| !d.is_empty()) {
        let dir = need(cg, "devices")?;
        for d in devices {
            let file = if d.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(dir, file, device_rule(d))?;
        }
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(RuntimeError::failed(
            "cgroup resources",
            "unified (cgroup v2) keys were given but the node runs cgroup v1",
        ));
    }
    Ok(())
}

fn memory_v1(cg: &ContainerCgroup, mem: &LinuxMemory) -> Result<(), RuntimeError> {
    let dir = need(cg, "memory")?;
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if let Some(limit) = mem.limit() {
        // memsw must stay >= limit at every moment: raising goes memsw first, lowering
        // limit first. Try limit first and, if the kernel refuses, memsw then limit.
        let swap = mem.swap();
        let first = write(dir, "memory.limit_in_bytes", limit);
        if let Some(swap) = swap {
            if memsw.exists() {
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
            } else if swap != limit && swap != -1 {
                super::warn(format!("swap limit {swap} ignored: swap accounting is off"));
            }
        }
        if first.is_err() {
            write(dir, "memory.limit_in_bytes", limit)?;
        }
    } else if let Some(swap) = mem.swap()
        && memsw.exists()
    {
        write(dir, "memory.memsw.limit_in_bytes", swap)?;
    }
    if let Some(r) = mem.reservation() {
        write(dir, "memory.soft_limit_in_bytes", r)?;
    }
    if let Some(s) = mem.swappiness().filter(|s| *s <= 100) {
        write(dir, "memory.swappiness", s)?;
    }
    if let Some(true) = mem.disable_oom_killer() {
        write(dir, "memory.oom_control", 1)?;
    }
    Ok(())
}

/// "c 1:3 rwm" from a rule; missing type/major/minor mean all.
fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = d
        .typ()
        .map(|t| t.as_str().to_string())
        .unwrap_or("a".into());
    let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or("*".into());
    let access = d.access().clone().unwrap_or("rwm".into());
    if typ == "a" {
        return "a".into();
    }
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc converts.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

pub(crate) fn apply_v2(cg: &ContainerCgroup, r: &LinuxResources) -> Result<(), RuntimeError> {
    let Some(dir) = cg.dirs.first().map(|d| d.as_path()) else {
        return Ok(());
    };
    if let Some(cpu) = r.cpu() {
        if let Some(w) = cpu.shares().map(shares_to_weight).filter(|w| *w > 0) {
            write(dir, "cpu.weight", w)?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let quota = match cpu.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = cpu.period().filter(|p| *p > 0).unwrap_or(100_000);
            write(dir, "cpu.max", format!("{quota} {period}"))?;
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", mems)?;
        }
    }
    if let Some(mem) = r.memory() {
        let max = |v: i64| if v < 0 { "max".into() } else { v.to_string() };
        if let Some(limit) = mem.limit() {
            write(dir, "memory.max", max(limit))?;
        }
        if let Some(swap) = mem.swap() {
            // OCI swap is memory+swap; v2 swap.max is swap alone.
            let v = match (swap, mem.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 && s >= l => (s - l).to_string(),
                (s, _) => {
                    return Err(RuntimeError::failed(
                        "cgroup resources",
                        format!("memory+swap limit {s} needs a memory limit not above it"),
                    ));
                }
            };
            if dir.join("memory.swap.max").exists() {
                write(dir, "memory.swap.max", v)?;
            }
        }
        if let Some(r) = mem.reservation() {
            write(dir, "memory.low", max(r))?;
        }
    }
    if let Some(pids) = r.pids() {
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        write(dir, "pids.max", v)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        write(dir, &format!("hugetlb.{}.max", h.page_size()), h.limit())?;
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        // blkio.weight (10..1000) to io.weight (1..10000), as runc converts.
        let w = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
        write(dir, "io.weight", w)?;
    }
    // Devices: see the module comment (needs eBPF; skipped).
    if let Some(unified) = r.unified() {
        for (key, value) in unified {
            if key.contains('/') || key.starts_with('.') {
                return Err(RuntimeError::failed(
                    "cgroup resources",
                    format!("unified key {key:?} is not a cgroup file name"),
                ));
            }
            write(dir, key, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn device_rules() {
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#)
                .unwrap();
        assert_eq!(device_rule(&r), "c 1:3 rwm");
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&r), "a");
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":136,"access":"rwm"}"#)
                .unwrap();
        assert_eq!(device_rule(&r), "c 136:* rwm");
    }
}
