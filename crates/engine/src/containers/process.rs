//! The OCI `process` of an extra process in a container (ExecSync, Exec): the container's
//! own settings (user, env, cwd, capabilities, rlimits...) with new args.

use berth_core::container::record::ContainerRecord;

use crate::EngineError;

pub fn exec_process(
    rec: &ContainerRecord,
    cmd: &[String],
    tty: bool,
) -> Result<serde_json::Value, EngineError> {
    let config = rec.bundle.join("config.json");
    let spec: serde_json::Value = std::fs::read(&config)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            EngineError::Internal(format!(
                "container {}: {} is unreadable",
                rec.id,
                config.display()
            ))
        })?;
    let mut process = spec.get("process").cloned().unwrap_or_default();
    process["args"] = serde_json::json!(cmd);
    process["terminal"] = serde_json::json!(tty);
    if !tty {
        // A console size only makes sense with a terminal.
        if let Some(p) = process.as_object_mut() {
            p.remove("consoleSize");
        }
    }
    Ok(process)
}

/// `user[:group]` (names or ids) for an exec (`docker exec -u`), resolved through the
/// container's own /etc/passwd and /etc/group, as the container's user was.
pub fn exec_user(rec: &ContainerRecord, spec: &str) -> Result<(u32, u32), EngineError> {
    let rootfs = rec.bundle.join("rootfs");
    let passwd = super::host::image_file(&rootfs, "etc/passwd");
    let group = super::host::image_file(&rootfs, "etc/group");
    berth_core::container::user::resolve(spec, passwd.as_deref(), group.as_deref())
        .map_err(|e| EngineError::InvalidArgument(format!("exec user {spec:?}: {e}")))
}
