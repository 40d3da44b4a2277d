//! The node's CPU time from /proc/stat, as dockerd computes `system_cpu_usage`: the sum of
//! the first `cpu` line's fields (user … steal), clock ticks turned into nanoseconds.

/// (cumulative ns of all CPUs, CPUs listed), or None when there is no `cpu` line.
pub fn node_cpu(stat: &str) -> Option<(u64, u32)> {
    // /proc/stat counts in USER_HZ ticks: sysconf(_SC_CLK_TCK), 100 on every Linux.
    let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    let mut total = None;
    let mut cpus = 0u32;
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal (guest is in user).
                let ticks: u64 = fields.take(8).filter_map(|f| f.parse::<u64>().ok()).sum();
                total = Some(ticks.saturating_mul(1_000_000_000 / ticks_per_sec));
            }
            Some(f) if f.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    total.map(|t| (t, cpus.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_first_line() {
        let stat = "cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 5 0 2 50 0 0 0 0 0 0\ncpu1 5 0 3 50 0 0 0 0 0 0\nintr 1\n";
        let (ns, cpus) = node_cpu(stat).expect("a cpu line");
        assert_eq!(cpus, 2);
        // 115 ticks at USER_HZ (100 on Linux) are 1.15 s.
        assert_eq!(ns, 1_150_000_000);
        assert_eq!(node_cpu("intr 1\n"), None);
    }
}
