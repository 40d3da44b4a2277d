//! The `bench containers` report: latency percentiles and per-pod memory tables with
//! berthd/containerd ratios, and the verdicts against the targets (start latency at most
//! 1/2 of containerd's, monitor memory at most 1/4 of the shim's).

use crate::bench::containers::{ContainersOptions, MemSample, Times};
use crate::bench::procmem::{Mem, PerPod};
use crate::bench::stats::{self, Runtime, percentile};

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

/// p50/p99 per operation and runtime, with ratios.
pub fn latency_table(b: &Times, c: &Times) -> String {
    stats::latency_table(&[
        (
            "CreateContainer+StartContainer",
            &b.create_start,
            &c.create_start,
        ),
        ("CreateContainer", &b.create, &c.create),
        ("StartContainer", &b.start, &c.start),
        ("StopContainer (timeout 0)", &b.stop, &c.stop),
        ("RemoveContainer", &b.remove, &c.remove),
    ])
}

/// Per-pod memory (KiB) per pod count: agent (monitor / shim), holder (pod init / pause),
/// both, and the daemon, with berthd/containerd ratios of RSS and PSS; USS (private pages)
/// and threads per process show what is really the process's own.
pub fn memory_table(samples: &[MemSample]) -> String {
    let mut t = String::from(
        "| pods | per pod | berthd RSS | PSS | USS | procs (threads) | containerd RSS | PSS | USS | procs (threads) | RSS ratio | PSS ratio |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut counts: Vec<usize> = samples.iter().map(|s| s.pods).collect();
    counts.dedup();
    for n in counts {
        let find = |rt| samples.iter().find(|s| s.pods == n && s.rt == rt);
        let (Some(b), Some(c)) = (find(Runtime::Berthd), find(Runtime::Containerd)) else {
            continue;
        };
        let both = |p: &PerPod| {
            let mut m = p.agent_mem;
            m += p.holder_mem;
            (m, p.agents + p.holders)
        };
        let rows = [
            (
                "monitor vs shim",
                (b.per_pod.agent_mem, b.per_pod.agents),
                (c.per_pod.agent_mem, c.per_pod.agents),
                n,
            ),
            (
                "pod init vs pause",
                (b.per_pod.holder_mem, b.per_pod.holders),
                (c.per_pod.holder_mem, c.per_pod.holders),
                n,
            ),
            ("both", both(&b.per_pod), both(&c.per_pod), n),
            (
                "daemon (whole, not per pod)",
                (b.daemon, 1),
                (c.daemon, 1),
                1,
            ),
        ];
        for (what, (bm, bp), (cm, cp), div) in rows {
            let d = div.max(1) as f64;
            let cell = |m: Mem, procs: usize| {
                format!(
                    "{:.0} | {:.0} | {:.0} | {:.1} ({:.1})",
                    m.rss_kib as f64 / d,
                    m.pss_kib as f64 / d,
                    m.private_kib as f64 / d,
                    procs as f64 / d,
                    m.threads as f64 / d
                )
            };
            t.push_str(&format!(
                "| {n} | {what} | {} | {} | {:.2} | {:.2} |\n",
                cell(bm, bp),
                cell(cm, cp),
                ratio(bm.rss_kib as f64, cm.rss_kib as f64),
                ratio(bm.pss_kib as f64, cm.pss_kib as f64)
            ));
        }
    }
    t
}

pub fn print_report(
    b: &Times,
    c: &Times,
    mem: &[MemSample],
    opts: &ContainersOptions,
    versions: (String, String),
    host: &[String],
) {
    crate::bench::print_header(&versions);
    println!(
        "containers: {} per runtime in blocks of {} (one pod per block), alternating first runtime",
        opts.containers, opts.block
    );
    println!();
    // `bench stats` runs no latency blocks.
    if opts.containers > 0 {
        print!("{}", latency_table(b, c));
        let r = ratio(
            percentile(&b.create_start, 50.0).as_secs_f64(),
            percentile(&c.create_start, 50.0).as_secs_f64(),
        );
        let verdict = if r <= 0.5 {
            "target met (at most 1/2)"
        } else {
            "target MISSED (goal: at most 1/2)"
        };
        println!("\nCreate+Start p50 ratio berthd/containerd: {r:.3} ({verdict})\n");
    }
    if mem.iter().any(|s| !s.list_stats.is_empty()) {
        print!("{}", crate::bench::list_stats::table(mem));
    }
    print!("{}", memory_table(mem));
    for s in mem.iter().filter(|s| s.rt == Runtime::Berthd) {
        if let Some(c) = mem
            .iter()
            .find(|x| x.rt == Runtime::Containerd && x.pods == s.pods)
        {
            let r = ratio(
                s.per_pod.agent_mem.pss_kib as f64,
                c.per_pod.agent_mem.pss_kib as f64,
            );
            let verdict = if r <= 0.25 {
                "target met (at most 1/4)"
            } else {
                "target MISSED (goal: at most 1/4)"
            };
            println!(
                "\n{} pods: monitor/shim PSS ratio {r:.3} ({verdict})",
                s.pods
            );
        }
    }
    println!();
    for l in host {
        println!("host cleanup: {l}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn tables_have_ratios() {
        let d = |m: u64| Duration::from_millis(m);
        let b = Times {
            create_start: vec![d(10), d(20)],
            ..Default::default()
        };
        let c = Times {
            create_start: vec![d(40), d(80)],
            ..Default::default()
        };
        let t = latency_table(&b, &c);
        assert!(
            t.contains(
                "| CreateContainer+StartContainer | 2 | 10.0 | 20.0 | 40.0 | 80.0 | 0.25 | 0.25 |"
            ),
            "{t}"
        );
        let m = |rss, pss| Mem {
            rss_kib: rss,
            pss_kib: pss,
            private_kib: pss / 2,
            threads: 10,
        };
        let s = |rt, agent| MemSample {
            rt,
            pods: 10,
            per_pod: PerPod {
                agents: 10,
                agent_mem: agent,
                holders: 10,
                holder_mem: m(0, 0),
            },
            daemon: m(1, 1),
            list_stats: vec![Duration::from_millis(match rt {
                Runtime::Berthd => 2,
                Runtime::Containerd => 8,
            })],
        };
        let l = crate::bench::list_stats::table(&[
            s(Runtime::Berthd, m(1, 1)),
            s(Runtime::Containerd, m(1, 1)),
        ]);
        assert!(
            l.contains("| 10 | 1 | 2.00 | 2.00 | 8.00 | 8.00 | 0.250 (target met) |"),
            "{l}"
        );
        let t = memory_table(&[
            s(Runtime::Berthd, m(10_000, 5_000)),
            s(Runtime::Containerd, m(100_000, 50_000)),
        ]);
        assert!(
            t.contains("| 10 | monitor vs shim | 1000 | 500 | 250 | 1.0 (1.0) | 10000 | 5000 | 2500 | 1.0 (1.0) | 0.10 | 0.10 |"),
            "{t}"
        );
    }
}
