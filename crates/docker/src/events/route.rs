//! `GET /events?since=&until=&filters=`: the kept events since `since` (none when it is not
//! given, as dockerd), then live events until `until` or until the client goes. An `until`
//! already past ends the stream after the replay.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::filter::EventFilter;
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json_stream, line};
use crate::router::Call;

pub fn events(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filter = EventFilter::new(call.query.filters()?)?;
    let since = parse_time(call.query.non_empty("since"), "since")?;
    let until = parse_time(call.query.non_empty("until"), "until")?;
    let now = berth_engine::containers::lifecycle::now_ns();
    let (history, mut live) = api.events.subscribe();
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let in_window = move |t: i64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u);
    let replay = since.is_some() || until.is_some_and(|u| u <= now);
    if replay {
        for m in history
            .iter()
            .filter(|m| in_window(m.time_nano) && filter.matches(m))
        {
            if tx.send(line(m)).is_err() {
                break;
            }
        }
    }
    if until.is_some_and(|u| u <= now) {
        return Ok(json_stream(rx));
    }
    let last_seq = history.last().map(|m| m.seq);
    tokio::spawn(async move {
        let deadline = until.map(|u| {
            tokio::time::Instant::now() + Duration::from_nanos(u.saturating_sub(now) as u64)
        });
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, live.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => tokio::select! {
                    r = live.recv() => r,
                    // The client went away: nobody reads the channel any more.
                    _ = tx.closed() => return,
                },
            };
            let m = match next {
                Ok(m) => m,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            if last_seq.is_some_and(|s| m.seq <= s) || !filter.matches(&m) {
                continue;
            }
            if tx.send(line(&m)).is_err() {
                return;
            }
        }
    });
    Ok(json_stream(rx))
}

/// dockerd's timestamps: seconds since the epoch with optional fractional nanoseconds
/// (`1700000000.5`, what the CLI sends for `--since 10m` or a date); as nanoseconds.
fn parse_time(raw: Option<&str>, what: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || {
        ApiError::bad_request(format!(
            "invalid value for {what}: {raw:?} (expected seconds since the epoch)"
        ))
    };
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return Err(bad());
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Some(
        secs.saturating_mul(1_000_000_000).saturating_add(nanos),
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_like_dockerd() {
        assert_eq!(
            parse_time(Some("12"), "since").unwrap(),
            Some(12_000_000_000)
        );
        assert_eq!(
            parse_time(Some("12.5"), "since").unwrap(),
            Some(12_500_000_000)
        );
        assert_eq!(
            parse_time(Some("1.000000001"), "until").unwrap(),
            Some(1_000_000_001)
        );
        assert_eq!(parse_time(None, "since").unwrap(), None);
        assert!(parse_time(Some("yesterday"), "since").is_err());
        assert!(parse_time(Some("1.x"), "since").is_err());
    }
}
