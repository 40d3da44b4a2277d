//! Container log files in the CRI format the kubelet reads:
//! `<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <message>\n`, one line per line the
//! container wrote (`P` for a partial line split by the runtime, `F` for its end).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub partial: bool,
    pub msg: String,
}

/// Checks the shape of a timestamp like `2026-11-26T16:24:01.123456789Z` or with an offset:
/// date, `T`, time with a fraction, then `Z` or `+hh:mm`/`-hh:mm`.
pub fn is_rfc3339_nano(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        r.clone()
            .all(|i| b.get(i).is_some_and(|c| c.is_ascii_digit()))
            && r.end <= b.len()
    };
    if b.len() < 21 || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return false;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    if !digits(11..13) || !digits(14..16) || !digits(17..19) || b[19] != b'.' {
        return false;
    }
    let rest = &t[20..];
    let frac_len = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    let zone = &rest[frac_len..];
    (1..=9).contains(&frac_len)
        && (zone == "Z" || (zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-'))))
}

/// Parses one line (without its `\n`).
pub fn parse_line(line: &str) -> Result<LogLine> {
    let mut parts = line.splitn(4, ' ');
    let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("not a CRI log line: {line:?}");
    };
    let msg = parts.next().unwrap_or("");
    if !is_rfc3339_nano(time) {
        bail!("bad timestamp {time:?} in {line:?}");
    }
    if stream != "stdout" && stream != "stderr" {
        bail!("bad stream {stream:?} in {line:?}");
    }
    if tag != "F" && tag != "P" {
        bail!("bad tag {tag:?} in {line:?}");
    }
    Ok(LogLine {
        time: time.into(),
        stream: stream.into(),
        partial: tag == "P",
        msg: msg.into(),
    })
}

/// Every line of a log file; fails on any line not in the CRI format.
pub fn read(path: &Path) -> Result<Vec<LogLine>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read log {path:?}"))?;
    if !text.is_empty() && !text.ends_with('\n') {
        bail!("log {path:?} does not end with a newline: {text:?}");
    }
    text.lines()
        .map(parse_line)
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("log {path:?}"))
}

/// The messages of one stream, partial lines joined with their ends. A last partial line
/// with no end (output that did not end with a newline: containerd tags it `P`) counts.
pub fn messages(lines: &[LogLine], stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = None::<String>;
    for l in lines.iter().filter(|l| l.stream == stream) {
        cur.get_or_insert_with(String::new).push_str(&l.msg);
        if !l.partial {
            out.extend(cur.take());
        }
    }
    out.extend(cur);
    out
}

/// Waits until the log's `stream` holds a message for which `pred` is true.
pub async fn wait_for(
    path: &Path,
    stream: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Result<Vec<LogLine>> {
    let until = Instant::now() + timeout;
    loop {
        if let Ok(lines) = read(path)
            && messages(&lines, stream).iter().any(|m| pred(m))
        {
            return Ok(lines);
        }
        if Instant::now() >= until {
            bail!(
                "log {path:?} ({stream}) has no matching line after {timeout:?}:\n{}",
                std::fs::read_to_string(path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_lines() {
        let l = parse_line("2026-11-26T16:24:01.123456789Z stdout F hello world").unwrap();
        assert_eq!(l.stream, "stdout");
        assert!(!l.partial);
        assert_eq!(l.msg, "hello world");
        let p = parse_line("2026-11-26T16:24:01.1+01:00 stderr P ").unwrap();
        assert!(p.partial && p.msg.is_empty());
        assert!(parse_line("2026-11-26 stdout F x").is_err());
        assert!(parse_line("2026-11-26T16:24:01.123Z stdin F x").is_err());
        assert!(parse_line("2026-11-26T16:24:01.123Z stdout X x").is_err());
        assert!(parse_line("2026-11-26T16:24:01Z stdout F x").is_err());
        let joined = messages(
            &[
                parse_line("2026-11-26T16:24:01.1Z stdout P ab").unwrap(),
                parse_line("2026-11-26T16:24:01.2Z stderr F e").unwrap(),
                parse_line("2026-11-26T16:24:01.3Z stdout F cd").unwrap(),
            ],
            "stdout",
        );
        assert_eq!(joined, vec!["abcd".to_string()]);
    }
}
