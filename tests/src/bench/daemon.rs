//! `bench daemon`: what the daemon process itself costs as pods accumulate. Each runtime in
//! turn (berthd first; the other runtime's pods are gone by then) is filled with running
//! pods of one busybox `sleep 3600` container each, and at each pod count (0, 10, 50, 100)
//! the daemon's RSS, PSS, USS, threads and open fds are read from /proc ([`procmem`]).
//! Per-pod processes (monitors, shims) are not counted here: `bench containers` does that.
//! The runtimes are set up by [`SideBySide`].

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::env::EnvOptions;
use crate::bench::procmem::{self, Mem};
use crate::bench::side_by_side::SideBySide;
use crate::bench::stats::Runtime;
use crate::containers::rpc as crpc;
use crate::pods::rpc;

/// Targets from issue 12, part 4 (berthd alone), in KiB.
pub const IDLE_RSS_KIB: u64 = 10 * 1024;
pub const RSS_AT_100_KIB: u64 = 20 * 1024;

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Running pod counts at which the daemon is sampled, ascending.
    pub pod_counts: Vec<usize>,
    pub env: EnvOptions,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            pod_counts: vec![0, 10, 50, 100],
            env: EnvOptions::default(),
        }
    }
}

/// The daemon of `rt` with `pods` running pods.
#[derive(Debug, Clone, Copy)]
pub struct DaemonSample {
    pub rt: Runtime,
    pub pods: usize,
    pub mem: Mem,
    /// RSS split: anonymous pages (heap, stacks) and file-backed ones (binary, libc).
    pub anon_kib: u64,
    pub file_kib: u64,
    pub fds: usize,
}

/// Runs the daemon phase and prints its report.
pub async fn run(opts: &DaemonOptions) -> Result<Vec<DaemonSample>> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench daemon cannot run: {why}");
    }
    if opts.pod_counts.windows(2).any(|w| w[0] > w[1]) {
        bail!("--pod-counts must be ascending: {:?}", opts.pod_counts);
    }
    let env = SideBySide::start("berth-bench-daemon-", &opts.env).await?;
    let mut samples = Vec::new();
    let result = async {
        for rt in [Runtime::Berthd, Runtime::Containerd] {
            fill(&env, rt, &opts.pod_counts, &mut samples).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let ((), done) = env.finish(result).await?;
    crate::bench::print_header(&done.versions);
    println!("daemon process only; pods of one busybox `sleep 3600` container each");
    println!();
    print!("{}", table(&samples));
    println!();
    for v in verdicts(&samples) {
        println!("{v}");
    }
    for l in &done.host {
        println!("host cleanup: {l}");
    }
    Ok(samples)
}

/// Runs pods on `rt` up to each count in turn and samples the daemon there; then removes
/// them all.
async fn fill(
    env: &SideBySide,
    rt: Runtime,
    counts: &[usize],
    out: &mut Vec<DaemonSample>,
) -> Result<()> {
    let mut c = env.rt(rt).await?;
    let mut running = 0;
    for &n in counts {
        while running < n {
            env.run_sleeping_pod(&mut c, rt, &format!("daemon-{}-{running}", rt.name()))
                .await?;
            running += 1;
        }
        // Let lazily touched pages and idle worker threads settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let procs = procmem::all();
        let pid = env
            .daemon_pid(rt, &procs)
            .with_context(|| format!("{}: no daemon process found", rt.name()))?;
        let (anon_kib, file_kib) = procmem::rss_split(pid);
        let s = DaemonSample {
            rt,
            pods: n,
            mem: procmem::mem_of(pid),
            anon_kib,
            file_kib,
            fds: procmem::fds_of(pid),
        };
        eprintln!(
            "bench: {} daemon with {n} pods: {} KiB RSS, {} KiB PSS, {} threads, {} fds",
            rt.name(),
            s.mem.rss_kib,
            s.mem.pss_kib,
            s.mem.threads,
            s.fds
        );
        out.push(s);
    }
    crpc::remove_all(&mut c).await?;
    rpc::remove_all(&mut c).await?;
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One row per pod count: both daemons side by side (MiB), with RSS and PSS ratios.
pub fn table(samples: &[DaemonSample]) -> String {
    let mut t = String::from(
        "| pods | berthd RSS (anon+file) MiB | PSS | USS | threads | fds | containerd RSS (anon+file) MiB | PSS | USS | threads | fds | RSS ratio | PSS ratio |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let find = |rt, n| samples.iter().find(|s| s.rt == rt && s.pods == n);
    for b in samples.iter().filter(|s| s.rt == Runtime::Berthd) {
        let Some(c) = find(Runtime::Containerd, b.pods) else {
            continue;
        };
        let cell = |s: &DaemonSample| {
            format!(
                "{:.1} ({:.1}+{:.1}) | {:.1} | {:.1} | {} | {}",
                mib(s.mem.rss_kib),
                mib(s.anon_kib),
                mib(s.file_kib),
                mib(s.mem.pss_kib),
                mib(s.mem.private_kib),
                s.mem.threads,
                s.fds
            )
        };
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        t.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} |\n",
            b.pods,
            cell(b),
            cell(c),
            ratio(b.mem.rss_kib, c.mem.rss_kib),
            ratio(b.mem.pss_kib, c.mem.pss_kib)
        ));
    }
    t
}

/// berthd's targets: RSS at most 10 MiB idle and 20 MiB at 100 pods; threads flat.
pub fn verdicts(samples: &[DaemonSample]) -> Vec<String> {
    let b: Vec<&DaemonSample> = samples.iter().filter(|s| s.rt == Runtime::Berthd).collect();
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = Vec::new();
    if let Some(idle) = b.iter().find(|s| s.pods == 0) {
        out.push(format!(
            "berthd idle RSS {:.1} MiB (at most {:.0}): {}",
            mib(idle.mem.rss_kib),
            mib(IDLE_RSS_KIB),
            met(idle.mem.rss_kib <= IDLE_RSS_KIB)
        ));
    }
    if let Some(full) = b.iter().find(|s| s.pods == 100) {
        out.push(format!(
            "berthd RSS at 100 pods {:.1} MiB (at most {:.0}): {}",
            mib(full.mem.rss_kib),
            mib(RSS_AT_100_KIB),
            met(full.mem.rss_kib <= RSS_AT_100_KIB)
        ));
    }
    if let (Some(first), Some(last)) = (b.first(), b.last()) {
        out.push(format!(
            "berthd threads {} at {} pods, {} at {} pods (the same): {}",
            first.mem.threads,
            first.pods,
            last.mem.threads,
            last.pods,
            met(first.mem.threads == last.mem.threads)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_verdicts() {
        let s = |rt, pods, rss, threads| DaemonSample {
            rt,
            pods,
            mem: Mem {
                rss_kib: rss,
                pss_kib: rss / 2,
                private_kib: rss / 4,
                threads,
            },
            anon_kib: rss / 4,
            file_kib: rss - rss / 4,
            fds: 10 + pods,
        };
        let all = [
            s(Runtime::Berthd, 0, 9 * 1024, 5),
            s(Runtime::Containerd, 0, 36 * 1024, 12),
            s(Runtime::Berthd, 100, 24 * 1024, 5),
            s(Runtime::Containerd, 100, 48 * 1024, 14),
        ];
        let t = table(&all);
        assert!(
            t.contains(
                "| 0 | 9.0 (2.2+6.8) | 4.5 | 2.2 | 5 | 10 | 36.0 (9.0+27.0) | 18.0 | 9.0 | 12 | 10 | 0.25 | 0.25 |"
            ),
            "{t}"
        );
        let v = verdicts(&all).join("\n");
        assert!(v.contains("idle RSS 9.0 MiB (at most 10): met"), "{v}");
        assert!(v.contains("100 pods 24.0 MiB (at most 20): MISSED"), "{v}");
        assert!(
            v.contains("5 at 0 pods, 5 at 100 pods (the same): met"),
            "{v}"
        );
    }
}
