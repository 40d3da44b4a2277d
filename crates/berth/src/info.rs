//! `berth info`: berthd's Status (verbose) for people: conditions, handlers, what it holds,
//! then its effective configuration.

use std::collections::BTreeMap;

use anyhow::Context;
use berth_api::cri::StatusResponse;
use serde_json::Value;

pub fn print(s: &StatusResponse, json: bool) -> anyhow::Result<()> {
    let parse = |k: &str| -> anyhow::Result<Value> {
        let text = s
            .info
            .get(k)
            .with_context(|| format!("berthd's Status has no {k:?} info (is it berthd?)"))?;
        serde_json::from_str(text).with_context(|| format!("Status info {k:?} is not JSON"))
    };
    let health = parse("health")?;
    let config = parse("config")?;
    if json {
        let all = serde_json::json!({"health": health, "config": config});
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    println!("Server:      berthd {}", str_of(&health["version"]));
    println!("cgroups:     {}", str_of(&health["cgroupVersion"]));
    println!("Conditions:");
    for c in s.status.iter().flat_map(|st| &st.conditions) {
        let why = if c.status {
            String::new()
        } else {
            format!("  {}: {}", c.reason, c.message)
        };
        println!("  {:<14} {}{why}", c.r#type, c.status);
    }
    let handlers: Vec<String> = s
        .runtime_handlers
        .iter()
        .map(|h| {
            if h.name.is_empty() {
                "(default)".into()
            } else {
                h.name.clone()
            }
        })
        .collect();
    println!("Handlers:    {}", handlers.join(", "));
    println!("Pods:        {}", counts(&health["pods"]));
    println!("Containers:  {}", counts(&health["containers"]));
    println!("Monitors:    {}", health["monitors"]);
    println!(
        "Pulls:       {} ({} failed)",
        health["imagePulls"], health["imagePullFailures"]
    );
    println!("Config:");
    for line in serde_json::to_string_pretty(&config)?.lines() {
        println!("  {line}");
    }
    Ok(())
}

fn counts(v: &Value) -> String {
    let m: BTreeMap<String, Value> = serde_json::from_value(v.clone()).unwrap_or_default();
    m.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}
