//! Builds `ContainerConfig`s the way the kubelet sends them, and reads crictl-style
//! container JSON (`crictl create <ctr.json> <pod.json>`) from `tests/fixtures/`.

use std::collections::HashMap;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::cri;

/// A container config under construction.
#[derive(Debug, Clone)]
pub struct CtrSpec {
    pub config: cri::ContainerConfig,
}

impl CtrSpec {
    /// Container `name` (attempt 0) of `image`, logging to `<name>/0.log` in the pod's
    /// log directory, labelled `ctr=<name>`, with the image's own command.
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            config: cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                log_path: format!("{name}/0.log"),
                labels: HashMap::from([("ctr".to_string(), name.to_string())]),
                linux: Some(cri::LinuxContainerConfig::default()),
                ..Default::default()
            },
        }
    }

    pub fn name(&self) -> String {
        self.config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    fn linux(&mut self) -> &mut cri::LinuxContainerConfig {
        self.config.linux.get_or_insert_with(Default::default)
    }

    fn security(&mut self) -> &mut cri::LinuxContainerSecurityContext {
        self.linux()
            .security_context
            .get_or_insert_with(Default::default)
    }

    fn resources(&mut self) -> &mut cri::LinuxContainerResources {
        self.linux().resources.get_or_insert_with(Default::default)
    }

    pub fn attempt(mut self, attempt: u32) -> Self {
        if let Some(m) = self.config.metadata.as_mut() {
            m.attempt = attempt;
        }
        self
    }

    /// `command` (the image's entrypoint is replaced).
    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.config.command = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `sh -c <script>`.
    pub fn sh(self, script: &str) -> Self {
        self.cmd(&["sh", "-c", script])
    }

    pub fn args(mut self, argv: &[&str]) -> Self {
        self.config.args = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.config.envs.push(cri::KeyValue {
            key: k.into(),
            value: v.into(),
        });
        self
    }

    pub fn workdir(mut self, dir: &str) -> Self {
        self.config.working_dir = dir.into();
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.config.labels.insert(k.into(), v.into());
        self
    }

    pub fn log_path(mut self, rel: &str) -> Self {
        self.config.log_path = rel.into();
        self
    }

    pub fn mount(mut self, host: &str, container: &str, readonly: bool) -> Self {
        self.config.mounts.push(cri::Mount {
            container_path: container.into(),
            host_path: host.into(),
            readonly,
            ..Default::default()
        });
        self
    }

    /// The last mount added becomes recursive read-only (`recursive_read_only`).
    pub fn recursive_read_only(mut self) -> Self {
        if let Some(m) = self.config.mounts.last_mut() {
            m.recursive_read_only = true;
        }
        self
    }

    /// The last mount added gets `propagation`.
    pub fn propagation(mut self, p: cri::MountPropagation) -> Self {
        if let Some(m) = self.config.mounts.last_mut() {
            m.propagation = p as i32;
        }
        self
    }

    /// `namespace_options.userns_options` (see [`crate::pods::userns_options`]).
    pub fn userns(
        mut self,
        mode: cri::NamespaceMode,
        uids: &[(u32, u32, u32)],
        gids: &[(u32, u32, u32)],
    ) -> Self {
        self.security()
            .namespace_options
            .get_or_insert_with(Default::default)
            .userns_options = Some(crate::pods::userns_options(mode, uids, gids));
        self
    }

    pub fn groups_policy(mut self, p: cri::SupplementalGroupsPolicy) -> Self {
        self.security().supplemental_groups_policy = p as i32;
        self
    }

    pub fn user(mut self, uid: i64) -> Self {
        self.security().run_as_user = Some(cri::Int64Value { value: uid });
        self
    }

    pub fn group(mut self, gid: i64) -> Self {
        self.security().run_as_group = Some(cri::Int64Value { value: gid });
        self
    }

    pub fn username(mut self, name: &str) -> Self {
        self.security().run_as_username = name.into();
        self
    }

    pub fn groups(mut self, gids: &[i64]) -> Self {
        self.security().supplemental_groups = gids.to_vec();
        self
    }

    /// A terminal for the container's stdio (`tty: true`).
    pub fn tty(mut self) -> Self {
        self.config.tty = true;
        self
    }

    /// An open stdin (`stdin: true`), closed after the first attacher leaves with `once`.
    pub fn stdin(mut self, once: bool) -> Self {
        self.config.stdin = true;
        self.config.stdin_once = once;
        self
    }

    pub fn readonly_rootfs(mut self) -> Self {
        self.security().readonly_rootfs = true;
        self
    }

    pub fn no_new_privs(mut self) -> Self {
        self.security().no_new_privs = true;
        self
    }

    /// Capabilities to add and drop (names as the kubelet sends them: "NET_ADMIN", "ALL").
    pub fn caps(mut self, add: &[&str], drop: &[&str]) -> Self {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        self.security().capabilities = Some(cri::Capability {
            add_capabilities: v(add),
            drop_capabilities: v(drop),
            add_ambient_capabilities: Vec::new(),
        });
        self
    }

    /// `seccomp.profile_type`: RuntimeDefault (0), Unconfined (1).
    pub fn seccomp(mut self, t: cri::security_profile::ProfileType) -> Self {
        self.security().seccomp = Some(cri::SecurityProfile {
            profile_type: t as i32,
            localhost_ref: String::new(),
        });
        self
    }

    /// Memory limit; swap limit = the limit (no swap), as the kubelet sends when swap is off.
    pub fn memory(mut self, bytes: i64) -> Self {
        let r = self.resources();
        r.memory_limit_in_bytes = bytes;
        r.memory_swap_limit_in_bytes = bytes;
        self
    }

    pub fn cpu(mut self, period: i64, quota: i64, shares: i64) -> Self {
        let r = self.resources();
        r.cpu_period = period;
        r.cpu_quota = quota;
        r.cpu_shares = shares;
        self
    }

    /// A cgroup v2 `unified` entry (ignored on v1).
    pub fn unified(mut self, k: &str, v: &str) -> Self {
        self.resources().unified.insert(k.into(), v.into());
        self
    }

    pub fn build(&self) -> cri::ContainerConfig {
        self.config.clone()
    }
}

// ---- crictl-style JSON --------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CtrJson {
    metadata: MetaJson,
    image: ImageJson,
    command: Vec<String>,
    args: Vec<String>,
    working_dir: String,
    envs: Vec<KvJson>,
    mounts: Vec<MountJson>,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
    log_path: String,
    linux: Option<LinuxJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MetaJson {
    name: String,
    attempt: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ImageJson {
    image: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct KvJson {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MountJson {
    container_path: String,
    host_path: String,
    readonly: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LinuxJson {
    resources: Option<ResourcesJson>,
    security_context: Option<SecurityJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ResourcesJson {
    cpu_period: i64,
    cpu_quota: i64,
    cpu_shares: i64,
    memory_limit_in_bytes: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SecurityJson {
    run_as_user: Option<ValueJson>,
    readonly_rootfs: bool,
    capabilities: Option<CapsJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ValueJson {
    value: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CapsJson {
    add_capabilities: Vec<String>,
    drop_capabilities: Vec<String>,
}

/// Parses crictl-style container JSON.
pub fn parse_container_json(text: &str) -> Result<cri::ContainerConfig> {
    let j: CtrJson = serde_json::from_str(text).context("container config JSON")?;
    let linux = j.linux.map(|l| cri::LinuxContainerConfig {
        resources: l.resources.map(|r| cri::LinuxContainerResources {
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            memory_limit_in_bytes: r.memory_limit_in_bytes,
            ..Default::default()
        }),
        security_context: l
            .security_context
            .map(|s| cri::LinuxContainerSecurityContext {
                run_as_user: s.run_as_user.map(|v| cri::Int64Value { value: v.value }),
                readonly_rootfs: s.readonly_rootfs,
                capabilities: s.capabilities.map(|c| cri::Capability {
                    add_capabilities: c.add_capabilities,
                    drop_capabilities: c.drop_capabilities,
                    add_ambient_capabilities: Vec::new(),
                }),
                ..Default::default()
            }),
    });
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: j.metadata.name,
            attempt: j.metadata.attempt,
        }),
        image: Some(cri::ImageSpec {
            image: j.image.image,
            ..Default::default()
        }),
        command: j.command,
        args: j.args,
        working_dir: j.working_dir,
        envs: j
            .envs
            .into_iter()
            .map(|kv| cri::KeyValue {
                key: kv.key,
                value: kv.value,
            })
            .collect(),
        mounts: j
            .mounts
            .into_iter()
            .map(|m| cri::Mount {
                container_path: m.container_path,
                host_path: m.host_path,
                readonly: m.readonly,
                ..Default::default()
            })
            .collect(),
        labels: j.labels,
        annotations: j.annotations,
        log_path: j.log_path,
        linux,
        ..Default::default()
    })
}

/// Loads `tests/fixtures/<name>` as a container config.
pub fn load_container_fixture(name: &str) -> Result<cri::ContainerConfig> {
    let path = crate::pods::fixture::fixture_path(name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path:?}"))?;
    parse_container_json(&text).with_context(|| format!("{path:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_fixtures_parse() {
        let dir = crate::pods::fixture::fixture_path("");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("container") && name.ends_with(".json") {
                let c = load_container_fixture(&name).unwrap();
                let meta = c.metadata.unwrap();
                assert!(!meta.name.is_empty(), "{name}");
                assert_eq!(c.log_path, format!("{}/0.log", meta.name), "{name}");
                n += 1;
            }
        }
        assert!(n >= 2, "container fixtures found: {n}");
        let c = load_container_fixture("container.json").unwrap();
        let sc = c.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.map(|v| v.value), Some(1000));
        assert!(parse_container_json(r#"{"metadata":{"name":"a"},"bogus":1}"#).is_err());
    }

    #[test]
    fn builder_sets_what_the_kubelet_sends() {
        let s = CtrSpec::new("web", "img:1")
            .sh("true")
            .user(1000)
            .memory(1 << 20)
            .caps(&["NET_ADMIN"], &["ALL"]);
        let c = s.build();
        assert_eq!(c.command, ["sh", "-c", "true"]);
        assert_eq!(c.log_path, "web/0.log");
        let l = c.linux.unwrap();
        let r = l.resources.unwrap();
        assert_eq!(r.memory_swap_limit_in_bytes, 1 << 20);
        let sc = l.security_context.unwrap();
        assert_eq!(sc.capabilities.unwrap().drop_capabilities, ["ALL"]);
    }
}
