//! `POST /containers/prune?filters=` (`docker container prune`): removes every container
//! that is not running (created or exited), with its logs, and reports the ids and the
//! bytes their writable layers held. Filters: `until` (created before) and `label`/`label!`.

use berth_core::container::record::{ContainerRecord, ContainerState};
use serde_json::json;

use super::lifecycle::remove;
use super::{all, user_labels};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::router::Call;

pub async fn prune(call: &Call, api: &DockerApi) -> Result<Reply, ApiError> {
    let filters = call.query.filters()?;
    filters.only(&["until", "label", "label!"])?;
    let until = match filters.values("until").next() {
        Some(u) => Some(until_ns(u)?),
        None => None,
    };
    let label_ok = |rec: &ContainerRecord, want: &String| {
        let have = user_labels(rec);
        match want.split_once('=') {
            Some((k, v)) => have.get(k).is_some_and(|x| x == v),
            None => have.contains_key(want.as_str()),
        }
    };
    let victims: Vec<ContainerRecord> = all(api)
        .await
        .into_iter()
        .filter(|r| r.state != ContainerState::Running && !api.runtime.is_restarting(&r.id))
        .filter(|r| until.is_none_or(|u| r.created_at < u))
        .filter(|r| filters.values("label").all(|l| label_ok(r, l)))
        .filter(|r| !filters.values("label!").any(|l| label_ok(r, l)))
        .collect();
    let sizes = api.runtime.container_usage(victims.clone()).await;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for (rec, usage) in victims.iter().zip(sizes) {
        match remove(api, rec, false).await {
            Ok(()) => {
                reclaimed += usage.layer.map_or(0, |l| l.used_bytes);
                deleted.push(rec.id.clone());
            }
            // Another request removed or restarted it meanwhile: not this prune's.
            Err(e) => tracing::debug!(container = %rec.id, error = %e, "prune: skipped"),
        }
    }
    Ok(ok_json(&json!({
        "ContainersDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}

/// `until`: a Unix time in seconds (the CLI turns `24h` and dates into one), or RFC 3339.
pub fn until_ns(raw: &str) -> Result<i64, ApiError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(secs) = raw.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    time::OffsetDateTime::parse(raw, &Rfc3339)
        .map(|t| t.unix_timestamp_nanos() as i64)
        .map_err(|_| ApiError::bad_request(format!("invalid filter 'until={raw}': not a time")))
}

#[cfg(test)]
mod tests {
    use super::until_ns;

    #[test]
    fn until_forms() {
        assert_eq!(until_ns("10").unwrap(), 10_000_000_000);
        assert_eq!(until_ns("1970-01-01T00:00:20Z").unwrap(), 20_000_000_000);
        assert!(until_ns("tomorrow").is_err());
    }
}
