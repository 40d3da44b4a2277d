//! Timings of one measured operation on both runtimes, and the table printed from them.

use std::fmt::Write as _;
use std::time::Duration;

/// The runtimes a bench compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Berthd,
    Containerd,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Berthd => "berthd",
            Runtime::Containerd => "containerd",
        }
    }

    /// Which runtime goes first in iteration `i`: alternating, so that neither always runs
    /// on a cold (or warm) page cache / registry.
    pub fn order(i: usize) -> [Runtime; 2] {
        if i.is_multiple_of(2) {
            [Runtime::Berthd, Runtime::Containerd]
        } else {
            [Runtime::Containerd, Runtime::Berthd]
        }
    }
}

/// Median (mean of the two middle values for an even count); zero when empty.
pub fn median(samples: &[Duration]) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    match s.len() {
        0 => Duration::ZERO,
        n if !n.is_multiple_of(2) => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

/// Nearest-rank percentile (`p` in 0..=100): the smallest sample with at least p% of the
/// samples at or below it; zero when empty. p99 of 60 samples is the largest one.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn min(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

/// `a / b`, with `b` kept away from zero.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A markdown table of latencies: one row per operation with its sample count, berthd's and
/// containerd's p50 and p99 (ms) and the berthd/containerd ratios of both.
pub fn latency_table(rows: &[(&str, &[Duration], &[Duration])]) -> String {
    let mut t = String::from(
        "| operation | n | berthd p50 (ms) | berthd p99 (ms) | containerd p50 (ms) | containerd p99 (ms) | berthd/containerd p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (op, x, y) in rows {
        let r = |p: f64| ratio(percentile(x, p), percentile(y, p));
        let _ = writeln!(
            t,
            "| {op} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
            x.len().min(y.len()),
            ms(percentile(x, 50.0)),
            ms(percentile(x, 99.0)),
            ms(percentile(y, 50.0)),
            ms(percentile(y, 99.0)),
            r(50.0),
            r(99.0)
        );
    }
    t
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Per-iteration timings of one operation on both runtimes.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// What was measured, e.g. "PullImage (51.2 MB)".
    pub what: String,
    pub berthd: Vec<Duration>,
    pub containerd: Vec<Duration>,
    /// Which runtime went first, per iteration.
    pub first: Vec<Runtime>,
}

impl Comparison {
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ..Default::default()
        }
    }

    pub fn record(&mut self, rt: Runtime, d: Duration) {
        match rt {
            Runtime::Berthd => self.berthd.push(d),
            Runtime::Containerd => self.containerd.push(d),
        }
    }

    /// berthd median / containerd median (below 1.0: berthd is faster).
    pub fn ratio(&self) -> f64 {
        let c = median(&self.containerd).as_secs_f64();
        if c == 0.0 {
            return f64::NAN;
        }
        median(&self.berthd).as_secs_f64() / c
    }

    /// A markdown table: one row per iteration, then median and min, then the ratio.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{}", self.what);
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "| iteration | first | berthd (s) | containerd (s) | berthd/containerd |"
        );
        let _ = writeln!(t, "|---|---|---:|---:|---:|");
        for (i, (b, c)) in self.berthd.iter().zip(&self.containerd).enumerate() {
            let first = self.first.get(i).map(|r| r.name()).unwrap_or("-");
            let r = b.as_secs_f64() / c.as_secs_f64().max(f64::MIN_POSITIVE);
            let _ = writeln!(
                t,
                "| {i} | {first} | {} | {} | {r:.2} |",
                secs(*b),
                secs(*c)
            );
        }
        let (mb, mc) = (median(&self.berthd), median(&self.containerd));
        let _ = writeln!(
            t,
            "| **median** | | **{}** | **{}** | **{:.2}** |",
            secs(mb),
            secs(mc),
            self.ratio()
        );
        let (nb, nc) = (min(&self.berthd), min(&self.containerd));
        let rmin = nb.as_secs_f64() / nc.as_secs_f64().max(f64::MIN_POSITIVE);
        let _ = writeln!(t, "| min | | {} | {} | {rmin:.2} |", secs(nb), secs(nc));
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&ms(&[30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(&ms(&[40, 10, 20, 30])), Duration::from_millis(25));
        assert_eq!(median(&[]), Duration::ZERO);
        assert_eq!(min(&ms(&[30, 10, 20])), Duration::from_millis(10));
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&ms(&v), 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&ms(&v), 99.0), Duration::from_millis(99));
        let v: Vec<u64> = (1..=60).collect();
        assert_eq!(percentile(&ms(&v), 99.0), Duration::from_millis(60));
        assert_eq!(percentile(&ms(&v), 50.0), Duration::from_millis(30));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn order_alternates() {
        assert_eq!(Runtime::order(0)[0], Runtime::Berthd);
        assert_eq!(Runtime::order(1)[0], Runtime::Containerd);
    }

    #[test]
    fn ratio_and_table() {
        let mut c = Comparison::new("pull");
        for (b, d) in [(100, 200), (300, 400), (200, 300)] {
            c.record(Runtime::Berthd, Duration::from_millis(b));
            c.record(Runtime::Containerd, Duration::from_millis(d));
        }
        assert!((c.ratio() - 2.0 / 3.0).abs() < 1e-9);
        let t = c.table();
        assert!(
            t.contains("| **median** | | **0.200** | **0.300** | **0.67** |"),
            "{t}"
        );
        assert!(t.contains("| min | | 0.100 | 0.200 | 0.50 |"), "{t}");
    }
}
