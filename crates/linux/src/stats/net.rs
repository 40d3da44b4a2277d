//! Interface counters of a pod's network namespace. `/proc/thread-self/net/dev` shows the
//! namespace of the reading thread, so a short-lived thread enters the pinned namespace
//! (setns), reads, and ends; a pool thread would stay in the pod's namespace after.

use std::fs::File;
use std::path::{Path, PathBuf};

use berth_core::stats::{InterfaceUsage, StatsError};
use nix::sched::{CloneFlags, setns};

pub fn read(netns: &Path) -> Result<Vec<InterfaceUsage>, StatsError> {
    let what = format!("network namespace {}", netns.display());
    let path: PathBuf = netns.to_path_buf();
    let reader = std::thread::Builder::new()
        .name("berth-netstats".into())
        .spawn(move || read_in(&path))
        .map_err(|e| StatsError::new(&what, format!("spawning a thread: {e}")))?;
    reader
        .join()
        .map_err(|_| StatsError::new(&what, "the reading thread panicked"))?
}

/// Runs on a thread of its own, which it moves into `netns`.
fn read_in(netns: &Path) -> Result<Vec<InterfaceUsage>, StatsError> {
    let what = format!("network namespace {}", netns.display());
    let f = File::open(netns).map_err(|e| StatsError::new(&what, format!("opening: {e}")))?;
    setns(&f, CloneFlags::CLONE_NEWNET)
        .map_err(|e| StatsError::new(&what, format!("entering: {e}")))?;
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")
        .map_err(|e| StatsError::new(&what, format!("reading /proc/thread-self/net/dev: {e}")))?;
    Ok(parse(&text))
}

/// `/proc/net/dev`: two header lines, then `name: rx(8 fields) tx(8 fields)`.
fn parse(text: &str) -> Vec<InterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            (f.len() >= 16).then(|| InterfaceUsage {
                name: name.to_string(),
                rx_bytes: f[0],
                rx_errors: f[2],
                tx_bytes: f[8],
                tx_errors: f[10],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    5000      40    2    0    0     0          0         0     3000      30    1    0    0     0       0          0
";
        let v = parse(text);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0],
            InterfaceUsage {
                name: "eth0".into(),
                rx_bytes: 5000,
                rx_errors: 2,
                tx_bytes: 3000,
                tx_errors: 1
            }
        );
    }
}
