//! `GET /containers/{id}/top?ps_args=` (`docker top`): as dockerd, the node's `ps` with the
//! given arguments (default `-ef`), keeping the rows whose PID is in the container's
//! cgroup. The last column (the command) keeps its spaces.

use berth_core::container::record::ContainerState;
use serde_json::json;

use super::{find_synced, from_engine};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::{Reply, ok_json};
use crate::router::Call;

pub async fn top(call: &Call, api: &DockerApi, key: &str) -> Result<Reply, ApiError> {
    let rec = find_synced(api, key).await?;
    if rec.state != ContainerState::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let args: Vec<String> = call
        .query
        .non_empty("ps_args")
        .unwrap_or("-ef")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pids = api
        .runtime
        .container_processes(&rec.id)
        .await
        .map_err(from_engine)?;
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ps: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let (titles, processes) = parse(&String::from_utf8_lossy(&out.stdout), &pids)?;
    Ok(ok_json(
        &json!({ "Titles": titles, "Processes": processes }),
    ))
}

type Table = (Vec<String>, Vec<Vec<String>>);

/// The header's titles and the rows of `pids`.
fn parse(text: &str, pids: &[i32]) -> Result<Table, ApiError> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut rows = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            return Err(ApiError::internal(format!(
                "Unexpected pid '{}' in ps output",
                fields[pid_col]
            )));
        };
        if !pids.contains(&pid) {
            continue;
        }
        let last = titles.len() - 1;
        let mut row: Vec<String> = fields[..last].iter().map(|s| s.to_string()).collect();
        row.push(fields[last..].join(" "));
        rows.push(row);
    }
    Ok((titles, rows))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn rows_of_the_container_with_whole_commands() {
        let text = "UID PID PPID C STIME TTY TIME CMD\n\
                    root 1 0 0 10:00 ? 00:00:01 /sbin/init splash\n\
                    root 42 41 0 10:01 ? 00:00:00 sleep 1000\n\
                    root 43 42 0 10:01 ? 00:00:00 sh -c echo hi\n";
        let (titles, rows) = parse(text, &[42, 43]).expect("parsed");
        assert_eq!(titles.len(), 8);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], "42");
        assert_eq!(rows[0][7], "sleep 1000");
        assert_eq!(rows[1][7], "sh -c echo hi");
    }

    #[test]
    fn no_pid_column_is_an_error() {
        assert!(parse("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
