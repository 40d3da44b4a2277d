//! The `bench lifecycle` report: per mode, p50/p99 of every RPC on both runtimes with the
//! berthd/containerd ratios, berthd's server-side latencies from its own trace, and the
//! verdicts against issue 12's targets.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench::lifecycle::{LifecycleOptions, ModeResult, RPCS};
use crate::bench::stats::{latency_table, percentile, ratio};

/// Issue 12's targets: (what, berthd/containerd p50 at most).
pub const TARGETS: [(&str, f64); 4] = [
    ("RunPodSandbox", 0.25),
    ("CreateContainer+StartContainer", 0.4),
    ("StopPodSandbox", 0.3),
    ("RemovePodSandbox", 0.5),
];

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The latency table of one mode: every RPC, then Create+Start.
pub fn mode_table(m: &ModeResult) -> String {
    let (bcs, ccs) = (m.berthd.create_start(), m.containerd.create_start());
    let mut rows: Vec<(&str, &[Duration], &[Duration])> = RPCS
        .iter()
        .map(|r| (*r, m.berthd.of(r), m.containerd.of(r)))
        .collect();
    rows.push(("CreateContainer+StartContainer", &bcs, &ccs));
    latency_table(&rows)
}

/// berthd's client-side p50 beside its server-side p50/p99 (its RPC trace).
pub fn server_table(m: &ModeResult) -> String {
    let mut t = String::from(
        "| RPC | berthd client p50 (ms) | berthd server p50 (ms) | server p99 (ms) | traced calls |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for r in RPCS {
        let server = m
            .berthd_server
            .get(r)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "| {r} | {} | {} | {} | {} |",
            ms(percentile(m.berthd.of(r), 50.0)),
            ms(percentile(server, 50.0)),
            ms(percentile(server, 99.0)),
            server.len()
        );
    }
    t
}

/// One line per target: the p50 ratio, the limit, met or missed.
pub fn verdicts(m: &ModeResult) -> String {
    let mut t = String::from(
        "| target | berthd/containerd p50 | at most | verdict |\n|---|---:|---:|---|\n",
    );
    for (what, limit) in TARGETS {
        let (b, c) = if what == "CreateContainer+StartContainer" {
            (m.berthd.create_start(), m.containerd.create_start())
        } else {
            (m.berthd.of(what).to_vec(), m.containerd.of(what).to_vec())
        };
        let r = ratio(percentile(&b, 50.0), percentile(&c, 50.0));
        let verdict = if r <= limit { "met" } else { "MISSED" };
        let _ = writeln!(t, "| {what} | {r:.2} | {limit} | {verdict} |");
    }
    t
}

pub fn print_report(
    modes: &[ModeResult],
    opts: &LifecycleOptions,
    versions: (String, String),
    host: &[String],
) {
    crate::bench::print_header(&versions);
    println!(
        "lifecycle:  {} per runtime and mode, one pod at a time, runtimes alternating first, {} ms idle before each",
        opts.iterations, opts.pause_ms
    );
    for m in modes {
        println!("\n### {}\n", m.mode.describe());
        print!("{}", mode_table(m));
        println!();
        print!("{}", server_table(m));
        println!();
        print!("{}", verdicts(m));
    }
    println!();
    for l in host {
        println!("host cleanup: {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::lifecycle::{Mode, Samples};

    #[test]
    fn tables_and_verdicts() {
        let d = |m: u64| vec![Duration::from_millis(m)];
        let s = |k: u64| Samples {
            rpc: [d(k), d(2 * k), d(k), d(k), d(k), d(k), d(k)],
        };
        let m = ModeResult {
            mode: Mode::Alone,
            berthd: s(1),
            containerd: s(10),
            berthd_server: [("RunPodSandbox".to_string(), d(1))].into(),
        };
        let t = mode_table(&m);
        assert!(
            t.contains(
                "| CreateContainer+StartContainer | 1 | 3.0 | 3.0 | 30.0 | 30.0 | 0.10 | 0.10 |"
            ),
            "{t}"
        );
        let v = verdicts(&m);
        assert!(v.contains("| RunPodSandbox | 0.10 | 0.25 | met |"), "{v}");
        let s = server_table(&m);
        assert!(s.contains("| RunPodSandbox | 1.0 | 1.0 | 1.0 | 1 |"), "{s}");
    }
}
