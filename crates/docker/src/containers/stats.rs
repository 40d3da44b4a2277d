//! `GET /containers/{id}/stats?stream=&one-shot=` (`docker stats`): the engine's figures
//! (the same readers as the CRI's ContainerStats) in dockerd's JSON. Each sample carries
//! the one before as `precpu_stats`, from which clients compute the CPU percentage against
//! the node's CPU time (`system_cpu_usage`).
//!
//! - `stream` (the default): a sample a second until the client goes.
//! - `stream=false`: one sample, read a second after a first one so `precpu_stats` is
//!   filled (dockerd's behaviour), or at once with `one-shot=true` (precpu left empty).
//! - A container that is not running gets samples with only its name and id, as from dockerd.

use std::time::Duration;

use berth_core::container::record::{ContainerRecord, ContainerState};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{docker_name, find, rfc3339};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, json_stream, ok_json};
use crate::router::Call;

const EVERY: Duration = Duration::from_secs(1);

/// One reading: the container's figures and the node's CPU time.
#[derive(Debug, Clone, Default)]
struct Reading {
    read_ns: i64,
    cpu_ns: Option<u64>,
    system_ns: Option<u64>,
    online_cpus: u32,
    memory: Option<berth_core::stats::MemoryUsage>,
    pids: Option<u64>,
    networks: Vec<berth_core::stats::InterfaceUsage>,
}

pub async fn stats(
    call: &Call,
    api: &std::sync::Arc<DockerApi>,
    key: &str,
) -> Result<Reply, ApiError> {
    let rec = find(api, key)?;
    let stream = call.query.get("stream").is_none() || call.query.bool("stream");
    let one_shot = call.query.bool("one-shot");
    if one_shot && stream {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    if !stream {
        let first = read(api, &rec.id).await;
        let (prev, now) = match (&first, one_shot) {
            (Some(_), false) => {
                tokio::time::sleep(EVERY).await;
                (first, read(api, &rec.id).await)
            }
            _ => (None, first),
        };
        return Ok(ok_json(&message(api, &rec, now.as_ref(), prev.as_ref())));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let api = api.clone();
    let id = rec.id.clone();
    tokio::spawn(async move {
        let mut prev: Option<Reading> = None;
        loop {
            let Ok(rec) = find(&api, &id) else { return };
            let now = read(&api, &id).await;
            let msg = message(&api, &rec, now.as_ref(), prev.as_ref());
            if tx.send(crate::http::line(&msg)).is_err() {
                return;
            }
            prev = now;
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(json_stream(rx))
}

/// The figures of a running container; None otherwise.
async fn read(api: &DockerApi, id: &str) -> Option<Reading> {
    let rec = api.runtime.container_status(id).await.ok()?;
    if rec.state != ContainerState::Running {
        return None;
    }
    let pod = api.runtime.pod(&rec.pod_id).ok()?;
    let usage = api.runtime.pod_usage(vec![pod]).await.into_iter().next()?;
    let c = usage.containers.into_iter().find(|c| c.record.id == id)?;
    let node = api.runtime.node_cpu().await;
    Some(Reading {
        read_ns: c.timestamp,
        cpu_ns: c.sample.usage.cpu_usage_ns,
        system_ns: node.map(|n| n.0),
        online_cpus: node.map_or(api.engine.ncpu.max(1) as u32, |n| n.1),
        memory: c.sample.usage.memory,
        pids: c.sample.usage.pids,
        networks: usage.network.unwrap_or_default(),
    })
}

fn message(
    api: &DockerApi,
    rec: &ContainerRecord,
    now: Option<&Reading>,
    prev: Option<&Reading>,
) -> Value {
    let Some(now) = now else {
        return json!({
            "read": rfc3339(0),
            "preread": rfc3339(0),
            "name": docker_name(rec),
            "id": rec.id,
        });
    };
    let mem = now.memory.clone().unwrap_or_default();
    // Unlimited: dockerd reports the node's memory.
    let limit = mem
        .limit_bytes
        .unwrap_or(api.engine.mem_total.max(0) as u64);
    let inactive_file = mem.usage_bytes.saturating_sub(mem.working_set_bytes);
    let networks: serde_json::Map<String, Value> = now
        .networks
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": 0, "rx_errors": n.rx_errors,
                    "rx_dropped": 0, "tx_bytes": n.tx_bytes, "tx_packets": 0,
                    "tx_errors": n.tx_errors, "tx_dropped": 0,
                }),
            )
        })
        .collect();
    json!({
        "read": rfc3339(now.read_ns),
        "preread": rfc3339(prev.map_or(0, |p| p.read_ns)),
        "pids_stats": { "current": now.pids.unwrap_or(0) },
        "blkio_stats": {
            "io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(Some(now)),
        "precpu_stats": cpu(prev),
        "memory_stats": {
            "usage": mem.usage_bytes,
            "stats": {
                // cgroup v1 clients subtract total_inactive_file, v2 ones inactive_file.
                "total_inactive_file": inactive_file,
                "inactive_file": inactive_file,
                "rss": mem.rss_bytes,
                "total_rss": mem.rss_bytes,
                "pgfault": mem.page_faults,
                "pgmajfault": mem.major_page_faults,
            },
            "limit": limit,
        },
        "name": docker_name(rec),
        "id": rec.id,
        "networks": networks,
    })
}

fn cpu(r: Option<&Reading>) -> Value {
    let Some(r) = r else {
        return json!({ "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0,
            "usage_in_usermode": 0 }, "throttling_data": { "periods": 0,
            "throttled_periods": 0, "throttled_time": 0 } });
    };
    json!({
        "cpu_usage": {
            "total_usage": r.cpu_ns.unwrap_or(0),
            "usage_in_kernelmode": 0,
            "usage_in_usermode": 0,
        },
        "system_cpu_usage": r.system_ns.unwrap_or(0),
        "online_cpus": r.online_cpus,
        "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
    })
}
