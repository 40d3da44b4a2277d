//! Running one CNI plugin binary: environment, stdin, result or error document.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// What every plugin call of one pod shares.
#[derive(Debug, Clone)]
pub(crate) struct Invocation<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// CNI_PATH: where plugins (and the plugins they delegate to, like IPAM) are found.
    pub path: &'a str,
    pub args: &'a str,
}

/// A plugin may run iptables or wait for a DHCP lease, but never for this long.
const TIMEOUT: Duration = Duration::from_secs(120);

fn find(plugin: &str, path: &str) -> Result<PathBuf, String> {
    std::env::split_paths(path)
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("CNI plugin {plugin:?} not found in {path}"))
}

/// Runs `plugin` with `command` (ADD, DEL, CHECK) and `config` on stdin. Returns the
/// parsed stdout (Null when empty, as for DEL and CHECK).
pub(crate) async fn run(
    plugin: &str,
    command: &str,
    inv: &Invocation<'_>,
    config: &Value,
) -> Result<Value, String> {
    let bin = find(plugin, inv.path)?;
    let mut child = tokio::process::Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", inv.path)
        .env("CNI_ARGS", inv.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running CNI plugin {}: {e}", bin.display()))?;
    let input = config.to_string();
    let mut stdin = child.stdin.take().ok_or("CNI plugin stdin missing")?;
    let output = async move {
        stdin.write_all(input.as_bytes()).await?;
        drop(stdin);
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(TIMEOUT, output)
        .await
        .map_err(|_| {
            format!(
                "CNI plugin {plugin} {command} timed out after {}s",
                TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("CNI plugin {plugin} {command}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The spec's error document: {"code": N, "msg": "...", "details": "..."}.
        let err: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        let msg = match (
            err.get("msg").and_then(Value::as_str),
            err.get("details").and_then(Value::as_str),
        ) {
            (Some(m), Some(d)) if !d.is_empty() => format!("{m}: {d}"),
            (Some(m), _) => m.to_string(),
            _ => format!(
                "{} {}",
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        };
        return Err(format!(
            "CNI plugin {plugin} {command} failed ({}): {msg}",
            out.status
        ));
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout)
        .map_err(|e| format!("CNI plugin {plugin} {command}: bad result JSON: {e}"))
}
