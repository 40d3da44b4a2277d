//! The `bench scale` report: list and status latencies with many pods, RunPodSandbox at 1
//! and at N pods, pods started at once, and the verdicts against issue 12's part 5.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench::scale::{ScaleOptions, ScaleSamples};
use crate::bench::stats::{latency_table, percentile, ratio};

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The whole report as markdown (without the header lines).
pub fn tables(b: &ScaleSamples, c: &ScaleSamples, opts: &ScaleOptions) -> String {
    let n = opts.pods;
    let mut t = format!("With {n} running pods (one container each):\n\n");
    let rows: [(&str, &[Duration], &[Duration]); 3] = [
        ("ListPodSandbox", &b.list_pods, &c.list_pods),
        ("ListContainers", &b.list_containers, &c.list_containers),
        ("PodSandboxStatus (each pod)", &b.pod_status, &c.pod_status),
    ];
    t.push_str(&latency_table(&rows));
    let _ = writeln!(
        t,
        "\nRunPodSandbox with 1 and with {n} pods running:\n\n\
         | runtime | n | p50 at 1 (ms) | p99 at 1 (ms) | p50 at {n} (ms) | p99 at {n} (ms) | p99 at {n} / at 1 |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for (name, s) in [("berthd", b), ("containerd", c)] {
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {} | {} | {:.2} |",
            s.run_at_1.len().min(s.run_at_n.len()),
            ms(percentile(&s.run_at_1, 50.0)),
            ms(percentile(&s.run_at_1, 99.0)),
            ms(percentile(&s.run_at_n, 50.0)),
            ms(percentile(&s.run_at_n, 99.0)),
            ratio(percentile(&s.run_at_n, 99.0), percentile(&s.run_at_1, 99.0)),
        );
    }
    let par = ratio(b.parallel_total, c.parallel_total);
    let _ = writeln!(
        t,
        "\n| started | berthd (s) | containerd (s) | berthd/containerd |\n|---|---:|---:|---:|\n\
         | {} pods at once (pod + container each) | {:.2} | {:.2} | {par:.2} |\n\
         | {} pods one after the other (pod + container each) | {:.2} | {:.2} | {:.2} |",
        opts.parallel,
        b.parallel_total.as_secs_f64(),
        c.parallel_total.as_secs_f64(),
        n - 1,
        b.fill_total.as_secs_f64(),
        c.fill_total.as_secs_f64(),
        ratio(b.fill_total, c.fill_total),
    );
    let _ = writeln!(
        t,
        "\n| target | value | at most | verdict |\n|---|---:|---:|---|"
    );
    for (what, x, y) in rows {
        for p in [50.0, 99.0] {
            let r = ratio(percentile(x, p), percentile(y, p));
            let _ = writeln!(
                t,
                "| {what} p{p:.0} berthd/containerd | {r:.2} | 0.5 | {} |",
                verdict(r <= 0.5)
            );
        }
    }
    let grow = ratio(percentile(&b.run_at_n, 99.0), percentile(&b.run_at_1, 99.0));
    let _ = writeln!(
        t,
        "| berthd RunPodSandbox p99 at {n} / at 1 pod | {grow:.2} | 1.0 | {} |",
        verdict(grow <= 1.0)
    );
    let _ = writeln!(
        t,
        "| {} pods at once berthd/containerd (no error) | {par:.2} | 0.5 | {} |",
        opts.parallel,
        verdict(par <= 0.5)
    );
    t
}

pub fn print_report(
    b: &ScaleSamples,
    c: &ScaleSamples,
    opts: &ScaleOptions,
    versions: (String, String),
    host: &[String],
) {
    crate::bench::print_header(&versions);
    println!(
        "scale:      {} pods, {} list calls, {} status rounds, {} runs, {} at once; berthd first, then containerd",
        opts.pods, opts.calls, opts.status_rounds, opts.runs, opts.parallel
    );
    println!();
    print!("{}", tables(b, c, opts));
    println!();
    for l in host {
        println!("host cleanup: {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_verdicts() {
        let d = |m: u64| vec![Duration::from_millis(m)];
        let s = |k: u64| ScaleSamples {
            list_pods: d(k),
            list_containers: d(k),
            pod_status: d(k),
            run_at_1: d(10 * k),
            run_at_n: d(10 * k),
            parallel_total: Duration::from_millis(100 * k),
            fill_total: Duration::from_millis(1000 * k),
        };
        let opts = ScaleOptions::default();
        let t = tables(&s(1), &s(4), &opts);
        assert!(
            t.contains("| ListPodSandbox p50 berthd/containerd | 0.25 | 0.5 | met |"),
            "{t}"
        );
        assert!(
            t.contains("| berthd RunPodSandbox p99 at 100 / at 1 pod | 1.00 | 1.0 | met |"),
            "{t}"
        );
        assert!(
            t.contains("| 20 pods at once berthd/containerd (no error) | 0.25 | 0.5 | met |"),
            "{t}"
        );
    }
}
