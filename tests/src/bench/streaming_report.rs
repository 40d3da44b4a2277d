//! The `bench streaming` report: exec round-trip percentiles and port-forward throughput on
//! both runtimes with berthd/containerd ratios, and the verdicts against the targets (berthd
//! at least equal to containerd on both).

use std::time::Duration;

use crate::bench::side_by_side::Finished;
use crate::bench::stats::{median, percentile};
use crate::bench::streaming::{Samples, StreamingOptions, mb_per_s};

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

/// p50/p99 of the exec round trip and of its Exec RPC alone.
pub fn exec_table(b: &Samples, c: &Samples) -> String {
    let mut t = String::from(
        "| exec `true` (SPDY) | n | berthd p50 (ms) | berthd p99 (ms) | containerd p50 (ms) | containerd p99 (ms) | berthd/containerd p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (what, x, y) in [
        ("Exec RPC + session", &b.exec, &c.exec),
        ("Exec RPC alone", &b.exec_rpc, &c.exec_rpc),
    ] {
        let r = |p: f64| {
            ratio(
                percentile(x, p).as_secs_f64(),
                percentile(y, p).as_secs_f64(),
            )
        };
        t.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {} | {:.2} | {:.2} |\n",
            x.len().min(y.len()),
            ms(percentile(x, 50.0)),
            ms(percentile(x, 99.0)),
            ms(percentile(y, 50.0)),
            ms(percentile(y, 99.0)),
            r(50.0),
            r(99.0)
        ));
    }
    t
}

/// MB/s per run and the medians.
pub fn throughput_table(b: &Samples, c: &Samples, mib: usize) -> String {
    let mut t = format!(
        "| port-forward {mib} MiB (SPDY) | berthd (MB/s) | containerd (MB/s) | berthd/containerd |\n\
         |---|---:|---:|---:|\n"
    );
    for (i, (x, y)) in b.download.iter().zip(&c.download).enumerate() {
        let (x, y) = (mb_per_s(mib, *x), mb_per_s(mib, *y));
        t.push_str(&format!(
            "| run {i} | {x:.1} | {y:.1} | {:.2} |\n",
            ratio(x, y)
        ));
    }
    let (x, y) = (
        mb_per_s(mib, median(&b.download)),
        mb_per_s(mib, median(&c.download)),
    );
    t.push_str(&format!(
        "| **median** | **{x:.1}** | **{y:.1}** | **{:.2}** |\n",
        ratio(x, y)
    ));
    t
}

pub fn print_report(b: &Samples, c: &Samples, opts: &StreamingOptions, done: &Finished) {
    println!("\n## bench streaming\n");
    println!("berthd: {}", done.versions.0);
    println!("containerd: {}", done.versions.1);
    println!(
        "execs: {} per runtime in blocks of {} (alternating), downloads: {} x {} MiB per runtime\n",
        opts.execs, opts.block, opts.runs, opts.mib
    );
    println!("{}", exec_table(b, c));
    println!("{}", throughput_table(b, c, opts.mib));
    let lat = ratio(
        percentile(&b.exec, 50.0).as_secs_f64(),
        percentile(&c.exec, 50.0).as_secs_f64(),
    );
    let thr = ratio(
        median(&c.download).as_secs_f64(),
        median(&b.download).as_secs_f64(),
    );
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "target: exec p50 berthd <= containerd: {:.2} ({})",
        lat,
        verdict(lat <= 1.0)
    );
    println!(
        "target: port-forward MB/s berthd >= containerd: {:.2} ({})",
        thr,
        verdict(thr >= 1.0)
    );
    for line in &done.host {
        println!("host: {line}");
    }
}
