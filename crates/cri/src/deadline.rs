//! The client's deadline (`grpc-timeout`), seen from the server. A creation that finishes
//! just before its deadline may still reach a client that has already given up: its timer
//! started before the request was sent, ours when it arrived. Such an answer counts as
//! lost, so the kubelet's identical retry gets the object (once) instead of AlreadyExists.
//! Erring that way is harmless: a client that did get the answer never retries it.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// How close to the deadline an answer counts as lost: the request's transit and the
/// client's scheduling, generously on a loaded node.
const SLACK: Duration = Duration::from_millis(25);

/// The request's `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit H M S m u n).
pub fn grpc_timeout(md: &MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Whether an answer ready now, for a request that arrived at `start` with `timeout`, may
/// come too late for its client.
pub fn maybe_too_late(start: Instant, timeout: Option<Duration>) -> bool {
    timeout.is_some_and(|t| start.elapsed() + SLACK >= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", v.parse().expect("ascii"));
        m
    }

    #[test]
    fn parses_every_unit_and_refuses_garbage() {
        assert_eq!(grpc_timeout(&md("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout(&md("3M")), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout(&md("4S")), Some(Duration::from_secs(4)));
        assert_eq!(grpc_timeout(&md("5m")), Some(Duration::from_millis(5)));
        assert_eq!(grpc_timeout(&md("6u")), Some(Duration::from_micros(6)));
        assert_eq!(grpc_timeout(&md("7n")), Some(Duration::from_nanos(7)));
        assert_eq!(grpc_timeout(&md("x")), None);
        assert_eq!(grpc_timeout(&md("5")), None);
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn too_late_only_near_the_deadline() {
        let now = Instant::now();
        assert!(!maybe_too_late(now, None));
        assert!(!maybe_too_late(now, Some(Duration::from_secs(60))));
        assert!(maybe_too_late(now, Some(Duration::from_millis(1))));
    }
}
