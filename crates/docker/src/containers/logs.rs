//! `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&timestamps=&since=&until=`
//! (`docker logs`), read from the container's CRI log file (`<RFC 3339 time> <stream>
//! <P|F> <text>` per line). Without a tty each chunk is framed in Docker's 8-byte
//! multiplexed header (stream 1 stdout, 2 stderr, then the length, big-endian); with a tty
//! the text goes raw, as dockerd sends it.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use berth_core::container::record::ContainerState;
use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use super::find_synced;
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, stream};
use crate::router::Call;

/// How often a followed log is read again for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// What to send of each entry.
#[derive(Debug, Clone)]
struct Opts {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tty: bool,
    /// Nanoseconds since the epoch; entries before are skipped.
    since: i64,
    /// Nanoseconds since the epoch; 0: no end.
    until: i64,
}

/// One line of a CRI log file.
#[derive(Debug, PartialEq)]
struct Entry {
    time: String,
    ns: i64,
    stderr: bool,
    /// The text, with the newline of a full line.
    text: Vec<u8>,
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = parts.next()?;
    let tag = parts.next()?;
    let mut text = parts.next().unwrap_or_default().to_vec();
    if tag != b"P" {
        text.push(b'\n');
    }
    let ns = OffsetDateTime::parse(&time, &Rfc3339)
        .map(|t| t.unix_timestamp_nanos() as i64)
        .unwrap_or(0);
    Some(Entry {
        time,
        ns,
        stderr: stream == b"stderr",
        text,
    })
}

/// `since`/`until` as dockerd takes them: Unix seconds with optional fraction.
fn parse_time(key: &str, v: Option<&str>) -> Result<i64, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let bad = || ApiError::bad_request(format!("invalid value for {key}: {v:?} (Unix seconds)"));
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().map_err(|_| bad())?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().map_err(|_| bad())?;
    }
    Ok(secs * 1_000_000_000 + nanos)
}

fn encode(e: &Entry, o: &Opts) -> Option<Bytes> {
    if (e.stderr && !o.stderr) || (!e.stderr && !o.stdout) {
        return None;
    }
    if (o.since > 0 && e.ns < o.since) || (o.until > 0 && e.ns > o.until) {
        return None;
    }
    let mut payload = Vec::with_capacity(e.text.len() + 40);
    if o.timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&e.text);
    if o.tty {
        return Some(Bytes::from(payload));
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(if e.stderr { 2 } else { 1 });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Some(Bytes::from(out))
}

pub async fn logs(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    let q = &call.query;
    let opts = Opts {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        timestamps: q.bool("timestamps"),
        tty: rec.config.tty,
        since: parse_time("since", q.get("since"))?,
        until: parse_time("until", q.get("until"))?,
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail: Option<usize> = match q.non_empty("tail") {
        None | Some("all") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value for tail: {t:?} (a number or all)"
                    ))
                })?
                .max(0) as usize,
        ),
    };
    let follow = q.bool("follow") && opts.until == 0;
    let path = rec.log_path.clone();
    let content_type = "application/vnd.docker.raw-stream";
    let (tx, rx) = mpsc::unbounded_channel();
    let Some(path) = path else {
        return Ok(stream(content_type, rx));
    };
    let (text, mut offset) = read_from(&path, 0);
    let (complete, _) = split_complete(&text);
    let entries: Vec<Entry> = complete
        .split(|b| *b == b'\n')
        .filter_map(parse_line)
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        if let Some(b) = encode(e, &opts) {
            let _ = tx.send(b);
        }
    }
    offset += complete.len() as u64 + u64::from(!complete.is_empty());
    if follow && matches!(rec.state, ContainerState::Running | ContainerState::Created) {
        let runtime = api.runtime.clone();
        let id = rec.id.clone();
        tokio::spawn(follow_log(runtime, id, path, offset, opts, tx));
    }
    Ok(stream(content_type, rx))
}

/// The container's log so far, framed as `docker logs` frames it (attach's `logs=1`).
pub fn so_far(
    rec: &berth_core::container::record::ContainerRecord,
    stdout: bool,
    stderr: bool,
) -> Vec<Bytes> {
    let opts = Opts {
        stdout,
        stderr,
        timestamps: false,
        tty: rec.config.tty,
        since: 0,
        until: 0,
    };
    let Some(path) = &rec.log_path else {
        return Vec::new();
    };
    let (text, _) = read_from(path, 0);
    let (complete, _) = split_complete(&text);
    complete
        .split(|b| *b == b'\n')
        .filter_map(parse_line)
        .filter_map(|e| encode(&e, &opts))
        .collect()
}

/// The output of the container's next run, read from its log file as it is appended: an
/// attach to an exited container (`docker start -a`) follows the run that the next start
/// begins. Framed as `docker logs` frames it; the channel ends when that run has ended.
pub fn next_run(
    api: &DockerApi,
    rec: &berth_core::container::record::ContainerRecord,
    stdout: bool,
    stderr: bool,
    replay: Vec<Bytes>,
) -> mpsc::UnboundedReceiver<Bytes> {
    let opts = Opts {
        stdout,
        stderr,
        timestamps: false,
        tty: rec.config.tty,
        since: 0,
        until: 0,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    for b in replay {
        let _ = tx.send(b);
    }
    let Some(path) = rec.log_path.clone() else {
        return rx;
    };
    // The log of the runs so far ends with a complete line.
    let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
    let (runtime, id, before) = (api.runtime.clone(), rec.id.clone(), rec.started_at);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FOLLOW_POLL).await;
            if tx.is_closed() {
                return;
            }
            match runtime.container_status(&id).await {
                Ok(r) if r.started_at > before => break,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        follow_log(runtime, id, path, offset, opts, tx).await;
    });
    rx
}

/// Sends what is appended to the log until the container has stopped (and the last lines
/// are read) or the client has gone.
async fn follow_log(
    runtime: std::sync::Arc<berth_engine::Engine>,
    id: String,
    path: PathBuf,
    mut offset: u64,
    opts: Opts,
    tx: mpsc::UnboundedSender<Bytes>,
) {
    loop {
        tokio::time::sleep(FOLLOW_POLL).await;
        if tx.is_closed() {
            return;
        }
        let running = runtime
            .container_status(&id)
            .await
            .is_ok_and(|r| matches!(r.state, ContainerState::Running | ContainerState::Created));
        let (text, _) = read_from(&path, offset);
        let (complete, _) = split_complete(&text);
        if !complete.is_empty() {
            offset += complete.len() as u64 + 1;
            for e in complete.split(|b| *b == b'\n').filter_map(parse_line) {
                if let Some(b) = encode(&e, &opts)
                    && tx.send(b).is_err()
                {
                    return;
                }
            }
        }
        if !running {
            return;
        }
    }
}

/// The file's bytes from `offset` (none when it cannot be read).
fn read_from(path: &std::path::Path, offset: u64) -> (Vec<u8>, u64) {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = f.read_to_end(&mut buf);
    }
    (buf, offset)
}

/// The complete lines of `text` (without the last newline) and the unfinished rest.
fn split_complete(text: &[u8]) -> (&[u8], &[u8]) {
    match text.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (&[], text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Opts {
        Opts {
            stdout: true,
            stderr: true,
            timestamps: false,
            tty: false,
            since: 0,
            until: 0,
        }
    }

    #[test]
    fn cri_lines_become_frames() {
        let e = parse_line(b"2024-01-01T00:00:00.5Z stderr F oops").unwrap();
        assert!(e.stderr);
        assert_eq!(e.text, b"oops\n");
        assert_eq!(e.ns, 1_704_067_200_500_000_000);
        let b = encode(&e, &opts()).unwrap();
        assert_eq!(&b[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&b[8..], b"oops\n");
        let p = parse_line(b"2024-01-01T00:00:00Z stdout P part").unwrap();
        assert_eq!(p.text, b"part");
        let mut o = opts();
        o.tty = true;
        o.timestamps = true;
        assert_eq!(&encode(&p, &o).unwrap()[..], b"2024-01-01T00:00:00Z part");
        o.stdout = false;
        assert!(encode(&p, &o).is_none());
        o.stdout = true;
        o.since = 1_704_067_201_000_000_000;
        assert!(encode(&p, &o).is_none());
    }

    #[test]
    fn times_and_lines() {
        assert_eq!(parse_time("since", Some("12.5")).unwrap(), 12_500_000_000);
        assert_eq!(parse_time("since", None).unwrap(), 0);
        assert!(parse_time("since", Some("x")).is_err());
        assert_eq!(split_complete(b"a\nb\nc"), (&b"a\nb"[..], &b"c"[..]));
        assert_eq!(split_complete(b"abc"), (&b""[..], &b"abc"[..]));
    }
}
