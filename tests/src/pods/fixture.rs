//! crictl-style pod configs (`crictl runp pod.json`) from `tests/fixtures/`, read into CRI
//! messages. crictl's JSON uses the proto field names; enums may be numbers (what crictl's
//! Go decoder takes) or names ("TCP", "NODE"), absent fields take their zero value.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::cri;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PodJson {
    metadata: MetaJson,
    hostname: String,
    log_directory: String,
    dns_config: Option<DnsJson>,
    port_mappings: Vec<PortJson>,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
    linux: Option<LinuxJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MetaJson {
    name: String,
    uid: String,
    namespace: String,
    attempt: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DnsJson {
    servers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PortJson {
    protocol: Value,
    container_port: i32,
    host_port: i32,
    host_ip: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LinuxJson {
    cgroup_parent: String,
    sysctls: HashMap<String, String>,
    security_context: Option<SecurityJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SecurityJson {
    namespace_options: Option<NamespaceJson>,
    privileged: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NamespaceJson {
    network: Value,
    pid: Value,
    ipc: Value,
}

/// An enum field: absent/null = 0, a number, or one of `names` (index = value).
fn enum_value(v: &Value, names: &[&str], what: &str) -> Result<i32> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .with_context(|| format!("{what}: {n} is not an enum value")),
        Value::String(s) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as i32)
            .with_context(|| format!("{what}: {s:?} is not one of {names:?}")),
        other => bail!("{what}: {other} is not an enum value"),
    }
}

const NS_MODES: &[&str] = &["POD", "CONTAINER", "NODE", "TARGET"];

/// Parses crictl-style pod JSON.
pub fn parse_pod_json(text: &str) -> Result<cri::PodSandboxConfig> {
    let p: PodJson = serde_json::from_str(text).context("pod config JSON")?;
    let mut ports = Vec::new();
    for pm in &p.port_mappings {
        ports.push(cri::PortMapping {
            protocol: enum_value(&pm.protocol, &["TCP", "UDP", "SCTP"], "protocol")?,
            container_port: pm.container_port,
            host_port: pm.host_port,
            host_ip: pm.host_ip.clone(),
        });
    }
    let linux = match p.linux {
        None => None,
        Some(l) => {
            let security_context = match l.security_context {
                None => None,
                Some(s) => {
                    let namespace_options = match s.namespace_options {
                        None => None,
                        Some(n) => Some(cri::NamespaceOption {
                            network: enum_value(&n.network, NS_MODES, "network")?,
                            pid: enum_value(&n.pid, NS_MODES, "pid")?,
                            ipc: enum_value(&n.ipc, NS_MODES, "ipc")?,
                            ..Default::default()
                        }),
                    };
                    Some(cri::LinuxSandboxSecurityContext {
                        namespace_options,
                        privileged: s.privileged,
                        ..Default::default()
                    })
                }
            };
            Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: l.cgroup_parent,
                security_context,
                sysctls: l.sysctls,
                ..Default::default()
            })
        }
    };
    Ok(cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: p.metadata.name,
            uid: p.metadata.uid,
            namespace: p.metadata.namespace,
            attempt: p.metadata.attempt,
        }),
        hostname: p.hostname,
        log_directory: p.log_directory,
        dns_config: p.dns_config.map(|d| cri::DnsConfig {
            servers: d.servers,
            searches: d.searches,
            options: d.options,
        }),
        port_mappings: ports,
        labels: p.labels,
        annotations: p.annotations,
        linux,
        windows: None,
    })
}

/// `tests/fixtures/<name>`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Loads `tests/fixtures/<name>` as a pod config.
pub fn load_fixture(name: &str) -> Result<cri::PodSandboxConfig> {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path:?}"))?;
    parse_pod_json(&text).with_context(|| format!("{path:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_parses() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("pod") && name.ends_with(".json") {
                let c = load_fixture(&name).unwrap();
                assert!(!c.metadata.unwrap().name.is_empty(), "{name}");
                n += 1;
            }
        }
        assert!(n >= 2, "pod fixtures found: {n}");
    }

    #[test]
    fn enums_by_name_or_number() {
        let c = parse_pod_json(
            r#"{"metadata":{"name":"a"},"port_mappings":[{"protocol":"UDP","container_port":53,"host_port":5353}],
               "linux":{"security_context":{"namespace_options":{"network":2,"pid":"CONTAINER"}}}}"#,
        )
        .unwrap();
        assert_eq!(c.port_mappings[0].protocol, cri::Protocol::Udp as i32);
        let ns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, 2);
        assert_eq!(ns.pid, 1);
        assert!(parse_pod_json(r#"{"metadata":{"name":"a"},"bogus":1}"#).is_err());
    }
}
