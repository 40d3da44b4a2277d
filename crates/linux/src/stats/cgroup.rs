//! CPU, memory and process figures of one cgroup, from the v1 controller hierarchies or the
//! unified v2 tree. Files a node lacks leave their figure None rather than fail the read.

use std::path::Path;

use berth_core::stats::{CgroupUsage, MemoryUsage};

use crate::cgroup::CgroupMode;

/// v1 writes "no limit" as a huge page-aligned number (PAGE_COUNTER_MAX * page size).
const V1_UNLIMITED: u64 = 1 << 62;

/// Reads `dir` (v2) or the dirs of each v1 hierarchy, picked by `dir_of(controller)`.
pub fn read(mode: CgroupMode, dir_of: impl Fn(&str) -> Option<std::path::PathBuf>) -> CgroupUsage {
    match mode {
        CgroupMode::V2 => match dir_of("") {
            Some(dir) => read_v2(&dir),
            None => CgroupUsage::default(),
        },
        CgroupMode::V1 => CgroupUsage {
            cpu_usage_ns: dir_of("cpuacct").and_then(|d| read_u64(&d.join("cpuacct.usage"))),
            memory: dir_of("memory").and_then(|d| memory_v1(&d)),
            pids: dir_of("pids").and_then(|d| read_u64(&d.join("pids.current"))),
        },
    }
}

fn read_v2(dir: &Path) -> CgroupUsage {
    let cpu = std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|t| key(&t, "usage_usec"))
        .map(|us| us.saturating_mul(1000));
    CgroupUsage {
        cpu_usage_ns: cpu,
        memory: memory_v2(dir),
        pids: read_u64(&dir.join("pids.current")),
    }
}

fn memory_v2(dir: &Path) -> Option<MemoryUsage> {
    let usage = read_u64(&dir.join("memory.current"))?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let get = |k| key(&stat, k).unwrap_or(0);
    let limit = std::fs::read_to_string(dir.join("memory.max"))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    Some(MemoryUsage {
        usage_bytes: usage,
        working_set_bytes: usage.saturating_sub(get("inactive_file")),
        rss_bytes: get("anon"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        limit_bytes: limit,
    })
}

fn memory_v1(dir: &Path) -> Option<MemoryUsage> {
    let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let get = |k| key(&stat, k).unwrap_or(0);
    let limit = read_u64(&dir.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED);
    Some(MemoryUsage {
        usage_bytes: usage,
        working_set_bytes: usage.saturating_sub(get("total_inactive_file")),
        rss_bytes: get("total_rss"),
        page_faults: get("total_pgfault"),
        major_page_faults: get("total_pgmajfault"),
        limit_bytes: limit,
    })
}

fn read_u64(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The value of `name` in a flat-keyed file ("name value" per line).
fn key(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (f, t) in files {
            std::fs::write(dir.join(f), t).unwrap();
        }
    }

    #[test]
    fn v2_files() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("cpu.stat", "usage_usec 1500\nuser_usec 1000\n"),
                ("memory.current", "10000\n"),
                (
                    "memory.stat",
                    "anon 4000\nfile 6000\ninactive_file 2500\npgfault 7\npgmajfault 1\n",
                ),
                ("memory.max", "max\n"),
                ("pids.current", "3\n"),
            ],
        );
        let u = read(CgroupMode::V2, |_| Some(d.path().to_path_buf()));
        assert_eq!(u.cpu_usage_ns, Some(1_500_000));
        assert_eq!(u.pids, Some(3));
        let m = u.memory.unwrap();
        assert_eq!(m.working_set_bytes, 7500);
        assert_eq!(m.rss_bytes, 4000);
        assert_eq!((m.page_faults, m.major_page_faults), (7, 1));
        assert_eq!(m.limit_bytes, None);
    }

    #[test]
    fn v1_files() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("cpuacct.usage", "123456\n"),
                ("memory.usage_in_bytes", "8192\n"),
                (
                    "memory.stat",
                    "cache 1\nrss 2\ntotal_rss 4096\ntotal_inactive_file 10000\ntotal_pgfault 9\ntotal_pgmajfault 2\n",
                ),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("pids.current", "2\n"),
            ],
        );
        let u = read(CgroupMode::V1, |_| Some(d.path().to_path_buf()));
        assert_eq!(u.cpu_usage_ns, Some(123456));
        let m = u.memory.unwrap();
        assert_eq!(m.working_set_bytes, 0, "never below zero");
        assert_eq!(m.rss_bytes, 4096);
        assert_eq!(m.limit_bytes, None);
        std::fs::write(d.path().join("memory.limit_in_bytes"), "65536\n").unwrap();
        let m = read(CgroupMode::V1, |_| Some(d.path().to_path_buf()))
            .memory
            .unwrap();
        assert_eq!(m.limit_bytes, Some(65536));
    }

    #[test]
    fn missing_files_are_none() {
        let d = tempfile::tempdir().unwrap();
        let u = read(CgroupMode::V2, |_| Some(d.path().join("gone")));
        assert_eq!(u, CgroupUsage::default());
    }
}
