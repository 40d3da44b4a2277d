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
