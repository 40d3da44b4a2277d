//! Memory of the per-pod processes each runtime keeps: berth's pod monitor (and pod init)
//! against containerd's `containerd-shim-runc-v2` (and the pause container), read from
//! /proc: VmRSS from `status` and Pss from `smaps_rollup` (shared pages split between the
//! processes that map them, so a sum of Pss is what the processes really cost together).

use std::path::Path;

/// One process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    pub rss_kib: u64,
    pub pss_kib: u64,
    /// Private_Clean + Private_Dirty: pages only this process maps (its USS).
    pub private_kib: u64,
    pub threads: u64,
}

impl std::ops::AddAssign for Mem {
    fn add_assign(&mut self, o: Self) {
        self.rss_kib += o.rss_kib;
        self.pss_kib += o.pss_kib;
        self.private_kib += o.private_kib;
        self.threads += o.threads;
    }
}

/// A `Key:   1234 kB` field of a /proc file.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn mem_of(pid: i32) -> Mem {
    let base = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(base.join("status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(base.join("smaps_rollup")).unwrap_or_default();
    Mem {
        rss_kib: kib_field(&status, "VmRSS:").unwrap_or(0),
        pss_kib: kib_field(&rollup, "Pss:").unwrap_or(0),
        private_kib: kib_field(&rollup, "Private_Clean:").unwrap_or(0)
            + kib_field(&rollup, "Private_Dirty:").unwrap_or(0),
        threads: status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// `pid`'s resident anonymous and file-backed pages (RssAnon, RssFile + RssShmem), in KiB.
pub fn rss_split(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let f = |k| kib_field(&status, k).unwrap_or(0);
    (f("RssAnon:"), f("RssFile:") + f("RssShmem:"))
}

/// Open file descriptors of `pid` (entries of /proc/<pid>/fd; 0 when unreadable).
pub fn fds_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A live process: pid, parent pid, argv.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub argv: Vec<String>,
}

/// Every process (zombies excluded), with its argv.
pub fn all() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first().is_none_or(|s| *s == "Z" || *s == "X") {
            continue;
        }
        let ppid = f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let argv = std::fs::read(e.path().join("cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        out.push(Proc { pid, ppid, argv });
    }
    out
}

/// Per-pod processes of each kind and their summed memory.
#[derive(Debug, Clone, Default)]
pub struct PerPod {
    /// berth's monitors or containerd's shims.
    pub agents: usize,
    pub agent_mem: Mem,
    /// berth's pod inits or containerd's pause processes.
    pub holders: usize,
    pub holder_mem: Mem,
}

/// True when the process's environment holds `BERTH_TEST_MARK=<mark>`.
pub fn has_mark(pid: i32, mark: &str) -> bool {
    let needle = format!("{}={mark}", crate::MARK_VAR);
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
}

/// berthd's per-pod processes: `<berthd> monitor ...` and `<berthd> pod-init` (run as
/// `/proc/self/exe pod-init`), found by the daemon's test mark, which they inherit.
pub fn berth_processes(procs: &[Proc], mark: &str) -> PerPod {
    let mut p = PerPod::default();
    for x in procs {
        if !has_mark(x.pid, mark) {
            continue;
        }
        match x.argv.get(1).map(String::as_str) {
            Some("monitor") => {
                p.agents += 1;
                p.agent_mem += mem_of(x.pid);
            }
            Some("pod-init") => {
                p.holders += 1;
                p.holder_mem += mem_of(x.pid);
            }
            _ => {}
        }
    }
    p
}

/// containerd's per-pod processes: shims started for the containerd listening on `socket`,
/// and the pause processes below them (the bench's pause runs `sh -c 'trap ...'`).
pub fn containerd_processes(procs: &[Proc], socket: &Path) -> PerPod {
    let sock = socket.display().to_string();
    let mut p = PerPod::default();
    let shims: Vec<i32> = procs
        .iter()
        .filter(|x| {
            x.argv
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
                && x.argv.contains(&sock)
        })
        .map(|x| x.pid)
        .collect();
    for x in procs {
        if shims.contains(&x.pid) {
            p.agents += 1;
            p.agent_mem += mem_of(x.pid);
        } else if shims.contains(&x.ppid) && x.argv.iter().any(|a| a.contains("trap")) {
            p.holders += 1;
            p.holder_mem += mem_of(x.pid);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let m = mem_of(std::process::id() as i32);
        assert!(m.rss_kib > 0, "{m:?}");
        assert!(fds_of(std::process::id() as i32) >= 3);
        assert_eq!(kib_field("Pss:     1234 kB\n", "Pss:"), Some(1234));
        let me = all();
        assert!(me.iter().any(|p| p.pid == std::process::id() as i32));
    }
}
