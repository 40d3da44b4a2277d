//! berthd's own RPC trace, read back from its log: the `rpc done latency_ms=…` line its
//! tower layer writes per RPC, so a bench can show the server-side cost of each RPC beside
//! the client's wall clock (the difference is the client, the socket and HTTP/2).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

/// Server-side latencies per RPC name (`RunPodSandbox`, …).
pub type Latencies = BTreeMap<String, Vec<Duration>>;

/// The log's current length: where a later [`read`] starts.
pub fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// Every traced RPC in `log` after byte `from`.
pub fn read(log: &Path, from: u64) -> Result<Latencies> {
    let mut f = std::fs::File::open(log).with_context(|| format!("open {log:?}"))?;
    f.seek(SeekFrom::Start(from))
        .with_context(|| format!("seek {log:?}"))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .with_context(|| format!("read {log:?}"))?;
    Ok(parse(&text))
}

/// The RPC lines of a text log, e.g.
/// `… INFO rpc{id=7 method=/runtime.v1.RuntimeService/RunPodSandbox}: … rpc done latency_ms=12.5 outcome="OK"`.
pub fn parse(text: &str) -> Latencies {
    let mut out = Latencies::new();
    for line in text.lines().filter(|l| l.contains("rpc done")) {
        let Some(method) = value_after(line, "method=") else {
            continue;
        };
        let Some(ms) = value_after(line, "latency_ms=").and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let name = method.rsplit('/').next().unwrap_or(method);
        out.entry(name.to_string())
            .or_default()
            .push(Duration::from_secs_f64(ms / 1000.0));
    }
    out
}

fn value_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '}' || c == ',')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rpc_lines() {
        let log = "2026-12-05T14:00:00Z  INFO rpc{id=7 method=/runtime.v1.RuntimeService/RunPodSandbox}: berthd::rpc_trace: rpc done latency_ms=12.5 outcome=\"OK\"\n\
                   2026-12-05T14:00:01Z  INFO berthd: something else\n\
                   2026-12-05T14:00:02Z  WARN rpc{id=8 method=/runtime.v1.RuntimeService/StopPodSandbox}: berthd::rpc_trace: rpc done latency_ms=3 outcome=\"NotFound\"\n";
        let l = parse(log);
        assert_eq!(l["RunPodSandbox"], vec![Duration::from_micros(12_500)]);
        assert_eq!(l["StopPodSandbox"], vec![Duration::from_millis(3)]);
        assert_eq!(l.len(), 2);
    }
}
