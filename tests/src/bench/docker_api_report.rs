//! The `bench docker` samples and report: per operation p50, p99 and mean on berthd and on
//! dockerd with the berthd/dockerd ratios; berthd's server-side time per endpoint (its
//! `docker api … elapsed_ms=` debug lines); the verdict against issue 13's target.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::docker_api::{ComposeVariant, DockerOptions};
use crate::bench::stats::{percentile, ratio};

/// Issue 13's target: berthd's `docker run --rm IMAGE true` at most this share of dockerd's.
pub const TARGET: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Berthd = 0,
    Dockerd = 1,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Berthd => "berthd",
            Daemon::Dockerd => "dockerd",
        }
    }
}

/// Client-side times per operation and daemon (in first-recorded order), and berthd's
/// server-side times per operation and endpoint.
#[derive(Debug, Default)]
pub struct Samples {
    ops: Vec<(String, [Vec<Duration>; 2])>,
    server: BTreeMap<String, BTreeMap<String, Vec<Duration>>>,
}

impl Samples {
    pub fn record(&mut self, op: &str, daemon: Daemon, d: Duration) {
        let i = match self.ops.iter().position(|(o, _)| o == op) {
            Some(i) => i,
            None => {
                self.ops.push((op.to_string(), Default::default()));
                self.ops.len() - 1
            }
        };
        self.ops[i].1[daemon as usize].push(d);
    }

    /// berthd's `docker api` lines between byte `from` and `to` of `log`, under `op`.
    pub fn record_server(&mut self, op: &str, log: &Path, from: u64, to: u64) -> Result<()> {
        let text = std::fs::read(log).with_context(|| format!("read {log:?}"))?;
        let end = (to as usize).min(text.len());
        let part = String::from_utf8_lossy(&text[(from as usize).min(end)..end]);
        let per_op = self.server.entry(op.to_string()).or_default();
        for (endpoint, d) in parse_api_lines(&part) {
            per_op.entry(endpoint).or_default().push(d);
        }
        Ok(())
    }

    pub fn of(&self, op: &str) -> Option<&[Vec<Duration>; 2]> {
        self.ops.iter().find(|(o, _)| o == op).map(|(_, s)| s)
    }
}

/// `(METHOD /path/with/{id}, elapsed)` of each `docker api` debug line, e.g.
/// `… DEBUG berth_docker::router: docker api method=POST path=/v1.41/containers/create status=201 elapsed_ms=12`.
pub fn parse_api_lines(text: &str) -> Vec<(String, Duration)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.contains("docker api")) {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(|v| v.trim_matches('"').to_string())
        };
        let (Some(method), Some(path), Some(ms)) =
            (field("method="), field("path="), field("elapsed_ms="))
        else {
            continue;
        };
        let Ok(ms) = ms.parse::<u64>() else { continue };
        out.push((
            format!("{method} {}", normalize(&path)),
            Duration::from_millis(ms),
        ));
    }
    out
}

/// The path without its API version, with object ids and names as `{id}`.
pub fn normalize(path: &str) -> String {
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.first().is_some_and(|s| s.starts_with("v1.")) {
        segs.remove(0);
    }
    // Image names have slashes and colons: `/images/127.0.0.1:5000/busybox:latest/json`.
    if segs.first() == Some(&"images") && segs.len() > 2 {
        let last = segs[segs.len() - 1];
        return format!("/images/{{name}}/{last}");
    }
    let mut out = String::new();
    let mut prev = "";
    for s in segs {
        let collection = matches!(prev, "containers" | "networks" | "volumes" | "exec");
        let keyword = matches!(s, "create" | "json" | "prune");
        out.push('/');
        out.push_str(if collection && !keyword { "{id}" } else { s });
        prev = s;
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mean(s: &[Duration]) -> Duration {
    if s.is_empty() {
        return Duration::ZERO;
    }
    s.iter().sum::<Duration>() / s.len() as u32
}

/// The table of client-side times.
pub fn latency_table(s: &Samples) -> String {
    let mut t = String::from(
        "| operation | n | berthd p50 (ms) | p99 | mean | dockerd p50 (ms) | p99 | mean | berthd/dockerd p50 | p99 | mean |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (op, [b, d]) in &s.ops {
        let r = |p: f64| ratio(percentile(b, p), percentile(d, p));
        let _ = writeln!(
            t,
            "| {op} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            b.len().min(d.len()),
            ms(percentile(b, 50.0)),
            ms(percentile(b, 99.0)),
            ms(mean(b)),
            ms(percentile(d, 50.0)),
            ms(percentile(d, 99.0)),
            ms(mean(d)),
            r(50.0),
            r(99.0),
            ratio(mean(b), mean(d)),
        );
    }
    t
}

/// berthd's server-side time per operation and endpoint: calls per operation, p50, p99.
pub fn server_table(s: &Samples) -> String {
    let mut t = String::from(
        "| operation | endpoint | calls/op | server p50 (ms) | p99 | client p50 of the op (ms) |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for (op, per) in &s.server {
        let runs = s.of(op).map(|x| x[0].len()).unwrap_or(0).max(1);
        let client = s
            .of(op)
            .map(|x| percentile(&x[0], 50.0))
            .unwrap_or_default();
        for (endpoint, v) in per {
            let _ = writeln!(
                t,
                "| {op} | `{endpoint}` | {:.1} | {} | {} | {} |",
                v.len() as f64 / runs as f64,
                ms(percentile(v, 50.0)),
                ms(percentile(v, 99.0)),
                ms(client),
            );
        }
    }
    t
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, kernel {}", kernel.trim())
}

pub fn render(
    opts: &DockerOptions,
    versions: &BTreeMap<&str, String>,
    variant: ComposeVariant,
    s: &Samples,
) -> String {
    let mut t = String::new();
    let v = |k: &str| versions.get(k).cloned().unwrap_or_default();
    let _ = writeln!(t, "\nberthd:     {}", v("berthd"));
    let _ = writeln!(
        t,
        "dockerd:    {} [{}]",
        v("dockerd"),
        crate::bench::dockerd::dockerd_bin().display()
    );
    let _ = writeln!(t, "machine:    {}", machine());
    let _ = writeln!(t, "workspace:  git {}", crate::bench::git_rev());
    let _ = writeln!(t, "load:       {}", crate::bench::loadavg());
    let _ = writeln!(
        t,
        "runs:       {} per daemon and CLI ({} warm-up not counted), compose {} ({})\n",
        opts.runs,
        opts.warmup,
        opts.compose_runs,
        match variant {
            ComposeVariant::Default | ComposeVariant::Auto => "compose.yml, project network",
            ComposeVariant::Bridge => "compose-bridge.yml, network_mode: bridge",
            ComposeVariant::Skip => "skipped",
        }
    );
    t.push_str(&latency_table(s));
    t.push_str("\nberthd server side (`docker api` debug lines):\n\n");
    t.push_str(&server_table(s));
    t.push('\n');
    for (op, [b, d]) in &s.ops {
        if !op.ends_with("run --rm true") {
            continue;
        }
        let r = ratio(percentile(b, 50.0), percentile(d, 50.0));
        let verdict = if r <= TARGET { "met" } else { "MISSED" };
        let _ = writeln!(
            t,
            "target {op}: berthd/dockerd p50 {r:.2} (at most {TARGET}): {verdict}"
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_ids_and_versions() {
        assert_eq!(normalize("/v1.41/containers/create"), "/containers/create");
        assert_eq!(
            normalize("/v1.41/containers/0123abcd/wait"),
            "/containers/{id}/wait"
        );
        assert_eq!(normalize("/containers/json"), "/containers/json");
        assert_eq!(normalize("/_ping"), "/_ping");
        assert_eq!(
            normalize("/v1.41/images/127.0.0.1:5000/busybox:latest/json"),
            "/images/{name}/json"
        );
        assert_eq!(normalize("/images/create"), "/images/create");
        assert_eq!(normalize("/volumes/berthbench_data"), "/volumes/{id}");
    }

    #[test]
    fn parses_api_lines() {
        let text = "2026-12-05T18:00:00Z DEBUG berth_docker::router: docker api method=POST path=/v1.41/containers/abc/start status=204 elapsed_ms=12\nother\n";
        let v = parse_api_lines(text);
        assert_eq!(
            v,
            vec![(
                "POST /containers/{id}/start".to_string(),
                Duration::from_millis(12)
            )]
        );
    }
}
