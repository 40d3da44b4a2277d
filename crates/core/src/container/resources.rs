//! cgroup resources and the container's cgroup path (containerd's WithResources and
//! getCgroupsPath, with berth's pod cgroup layout).

use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxPids, LinuxResources,
};
use serde::{Deserialize, Serialize};

use super::SpecError;
use super::config::Resources;
use crate::config::CgroupDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// What the node's cgroups offer, found by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupCaps {
    pub version: CgroupVersion,
    /// The memory controller accounts swap (memory.memsw.* on v1, memory.swap.max on v2).
    pub swap: bool,
    /// The hugetlb controller is there; without it hugepage limits are skipped, as
    /// containerd does by default (tolerate_missing_hugetlb_controller).
    pub hugetlb: bool,
}

/// cgroup v1 cpu.shares → v2 cpu.weight, the conversion runc and crun use:
/// 1 + ((shares - 2) * 9999) / 262142, shares clamped to [2, 262144]. The spec carries
/// shares (OCI has no weight field); runtimes on v2 convert with this.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

fn non_negative(field: &'static str, v: i64) -> Result<(), SpecError> {
    if v < 0 {
        return Err(SpecError::Invalid {
            field,
            value: v.to_string(),
            reason: "must not be negative".into(),
        });
    }
    Ok(())
}

/// The spec's resources. Zero CRI values mean "not set". A memory limit without a swap
/// limit sets swap to the limit (no swap use) when swap is accounted. `unified` applies on
/// cgroup v2 only and is dropped on v1.
pub fn resources(
    r: &Resources,
    node: CgroupCaps,
    pids_limit: Option<i64>,
    devices: Vec<LinuxDeviceCgroup>,
) -> Result<LinuxResources, SpecError> {
    non_negative("cpu_period", r.cpu_period)?;
    non_negative("cpu_shares", r.cpu_shares)?;
    non_negative("memory_limit_in_bytes", r.memory_limit_in_bytes)?;
    if r.cpu_quota < -1 {
        return Err(SpecError::Invalid {
            field: "cpu_quota",
            value: r.cpu_quota.to_string(),
            reason: "must be -1 (unlimited), 0 (unset) or positive".into(),
        });
    }
    if r.memory_swap_limit_in_bytes < -1 {
        return Err(SpecError::Invalid {
            field: "memory_swap_limit_in_bytes",
            value: r.memory_swap_limit_in_bytes.to_string(),
            reason: "must be -1 (unlimited), 0 (unset) or positive".into(),
        });
    }

    let mut out = LinuxResources::default();
    out.set_devices(Some(devices));

    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    if r.cpu_period != 0 {
        cpu.set_period(Some(r.cpu_period as u64));
        any_cpu = true;
    }
    if r.cpu_quota != 0 {
        cpu.set_quota(Some(r.cpu_quota));
        any_cpu = true;
    }
    if r.cpu_shares != 0 {
        cpu.set_shares(Some(r.cpu_shares as u64));
        any_cpu = true;
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(r.cpuset_cpus.clone()));
        any_cpu = true;
    }
    if !r.cpuset_mems.is_empty() {
        cpu.set_mems(Some(r.cpuset_mems.clone()));
        any_cpu = true;
    }
    if any_cpu {
        out.set_cpu(Some(cpu));
    }

    let mut memory = LinuxMemory::default();
    let limit = r.memory_limit_in_bytes;
    if limit != 0 {
        memory.set_limit(Some(limit));
        if r.memory_swap_limit_in_bytes == 0 && node.swap {
            memory.set_swap(Some(limit));
        }
    }
    if r.memory_swap_limit_in_bytes != 0 && node.swap {
        memory.set_swap(Some(r.memory_swap_limit_in_bytes));
    }
    if memory != LinuxMemory::default() {
        out.set_memory(Some(memory));
    }

    if let Some(limit) = pids_limit.filter(|l| *l != 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        out.set_pids(Some(pids));
    }

    if node.hugetlb && !r.hugepage_limits.is_empty() {
        let mut limits = Vec::new();
        for h in &r.hugepage_limits {
            if h.page_size.is_empty() {
                return Err(SpecError::Invalid {
                    field: "hugepage_limits page_size",
                    value: String::new(),
                    reason: "a hugepage limit needs a page size (2MB, 1GB...)".into(),
                });
            }
            let mut l = LinuxHugepageLimit::default();
            l.set_page_size(h.page_size.clone());
            l.set_limit(i64::try_from(h.limit).unwrap_or(i64::MAX));
            limits.push(l);
        }
        out.set_hugepage_limits(Some(limits));
    }

    if node.version == CgroupVersion::V2 && !r.unified.is_empty() {
        let unified: HashMap<String, String> = r.unified.clone().into_iter().collect();
        out.set_unified(Some(unified));
    }
    Ok(out)
}

/// The container's `cgroupsPath`. cgroupfs: `/<pod cgroup>/<short id>` (absolute, i.e. from
/// the cgroup root). systemd: runc's `slice:prefix:name` form, `<pod's innermost
/// slice>:berth:<short id>`, giving the unit `berth-<short id>.scope` in the pod's slice, as
/// containerd does (`-.slice` when the pod path has no slice). None without a pod cgroup.
pub fn cgroups_path(
    driver: CgroupDriver,
    pod_cgroup: Option<&str>,
    container_id: &str,
) -> Option<String> {
    let pod = pod_cgroup?.trim_matches('/');
    let short = &container_id[..container_id.len().min(12)];
    Some(match driver {
        CgroupDriver::Cgroupfs if pod.is_empty() => format!("/{short}"),
        CgroupDriver::Cgroupfs => format!("/{pod}/{short}"),
        CgroupDriver::Systemd => {
            let slice = pod
                .rsplit('/')
                .find(|c| c.ends_with(".slice"))
                .unwrap_or("-.slice");
            format!("{slice}:berth:{short}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::HugepageLimit;
    use super::*;

    const V1: CgroupCaps = CgroupCaps {
        version: CgroupVersion::V1,
        swap: true,
        hugetlb: true,
    };
    const V2: CgroupCaps = CgroupCaps {
        version: CgroupVersion::V2,
        swap: false,
        hugetlb: false,
    };

    #[test]
    fn shares_to_weight() {
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(0), 1);
        assert_eq!(cpu_shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn empty_resources_set_only_devices_and_pids() {
        let out = resources(&Resources::default(), V1, Some(4096), vec![]).unwrap();
        assert!(out.cpu().is_none());
        assert!(out.memory().is_none());
        assert_eq!(out.pids().map(|p| p.limit()), Some(4096));
        assert_eq!(out.devices().as_ref().map(Vec::len), Some(0));
        let out = resources(&Resources::default(), V1, None, vec![]).unwrap();
        assert!(out.pids().is_none());
    }

    #[test]
    fn cpu_and_memory() {
        let r = Resources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        };
        let out = resources(&r, V1, None, vec![]).unwrap();
        let cpu = out.cpu().as_ref().unwrap();
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
        assert_eq!(cpu.mems().as_deref(), Some("0"));
        let mem = out.memory().unwrap();
        assert_eq!(mem.limit(), Some(64 << 20));
        // No swap limit given: swap = limit, so the container cannot swap.
        assert_eq!(mem.swap(), Some(64 << 20));
    }

    #[test]
    fn swap_limit_and_no_swap_accounting() {
        let r = Resources {
            memory_limit_in_bytes: 100,
            memory_swap_limit_in_bytes: 300,
            ..Default::default()
        };
        assert_eq!(
            resources(&r, V1, None, vec![])
                .unwrap()
                .memory()
                .unwrap()
                .swap(),
            Some(300)
        );
        let m = resources(&r, V2, None, vec![]).unwrap().memory().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(100), None));
    }

    #[test]
    fn hugepages_and_unified_depend_on_node() {
        let r = Resources {
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            unified: [("memory.high".to_string(), "1000".to_string())].into(),
            ..Default::default()
        };
        let v1 = resources(&r, V1, None, vec![]).unwrap();
        assert_eq!(v1.hugepage_limits().as_ref().unwrap()[0].page_size(), "2MB");
        assert!(v1.unified().is_none());
        let v2 = resources(&r, V2, None, vec![]).unwrap();
        assert!(v2.hugepage_limits().is_none());
        assert_eq!(v2.unified().as_ref().unwrap()["memory.high"], "1000");
    }

    #[test]
    fn negative_values_are_named() {
        for (r, field) in [
            (
                Resources {
                    cpu_shares: -2,
                    ..Default::default()
                },
                "cpu_shares",
            ),
            (
                Resources {
                    cpu_period: -1,
                    ..Default::default()
                },
                "cpu_period",
            ),
            (
                Resources {
                    cpu_quota: -5,
                    ..Default::default()
                },
                "cpu_quota",
            ),
            (
                Resources {
                    memory_limit_in_bytes: -1,
                    ..Default::default()
                },
                "memory_limit_in_bytes",
            ),
        ] {
            let e = resources(&r, V1, None, vec![]).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let r = Resources {
            cpu_quota: -1,
            ..Default::default()
        };
        assert_eq!(
            resources(&r, V1, None, vec![])
                .unwrap()
                .cpu()
                .as_ref()
                .unwrap()
                .quota(),
            Some(-1)
        );
    }

    #[test]
    fn cgroup_paths() {
        let id = "0123456789abcdef0123";
        assert_eq!(
            cgroups_path(
                CgroupDriver::Cgroupfs,
                Some("kubepods/besteffort/podx/berth-aaa"),
                id
            )
            .as_deref(),
            Some("/kubepods/besteffort/podx/berth-aaa/0123456789ab")
        );
        assert_eq!(
            cgroups_path(
                CgroupDriver::Systemd,
                Some("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/berth-aaa.scope"),
                id
            )
            .as_deref(),
            Some("kubepods-besteffort-pod12.slice:berth:0123456789ab")
        );
        assert_eq!(
            cgroups_path(CgroupDriver::Systemd, Some("berth-aaa.scope"), id).as_deref(),
            Some("-.slice:berth:0123456789ab")
        );
        assert_eq!(cgroups_path(CgroupDriver::Cgroupfs, None, id), None);
    }
}
