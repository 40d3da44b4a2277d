//! `bench stats`: ListContainerStats latency with N running containers (one per pod), on
//! berthd and on containerd, measured inside the containers phase's memory step (same
//! pods, same moment). Target: berthd at most 1/2 of containerd's p50.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::bench::containers::MemSample;
use crate::bench::stats::{Runtime, percentile};
use crate::cri::ListContainerStatsRequest;
use crate::pods::rpc;

/// `calls` timed ListContainerStats (after one untimed warm-up), each answering `expect`.
pub async fn time(c: &mut rpc::Runtime, expect: usize, calls: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(calls);
    for i in 0..=calls {
        let t = Instant::now();
        let n = c
            .list_container_stats(ListContainerStatsRequest { filter: None })
            .await
            .map_err(|s| anyhow::anyhow!("ListContainerStats: {:?}: {}", s.code(), s.message()))?
            .into_inner()
            .stats
            .len();
        let took = t.elapsed();
        if n != expect {
            bail!("ListContainerStats answered {n} containers, {expect} run");
        }
        if i > 0 {
            out.push(took);
        }
    }
    Ok(out)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub fn table(mem: &[MemSample]) -> String {
    let mut t = String::from(
        "| running containers | calls | berthd p50 (ms) | berthd p99 (ms) | containerd p50 (ms) | containerd p99 (ms) | berthd/containerd p50 |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for b in mem.iter().filter(|s| s.rt == Runtime::Berthd) {
        let Some(c) = mem
            .iter()
            .find(|x| x.rt == Runtime::Containerd && x.pods == b.pods)
        else {
            continue;
        };
        let (bp, cp) = (
            percentile(&b.list_stats, 50.0),
            percentile(&c.list_stats, 50.0),
        );
        let r = bp.as_secs_f64() / cp.as_secs_f64().max(f64::MIN_POSITIVE);
        let verdict = if r <= 0.5 {
            "target met"
        } else {
            "target MISSED (goal: at most 1/2)"
        };
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {r:.3} ({verdict}) |\n",
            b.pods,
            b.list_stats.len(),
            ms(bp),
            ms(percentile(&b.list_stats, 99.0)),
            ms(cp),
            ms(percentile(&c.list_stats, 99.0)),
        ));
    }
    t.push('\n');
    t
}
