//! Pod networking by CNI plugins (when `network.cni_conf_dir` is set), as the kubelet's
//! other runtimes do it: the lexicographically first config of the directory, its plugins
//! run in order on ADD (each given the previous one's result) and in reverse on DEL, the
//! loopback plugin for `lo`, and the ADD result cached in `<state_dir>/cni/<pod id>.json`
//! so DEL gets the config and result ADD used even if the directory changed since.
//! Calls are serialised per state directory (plugins such as host-local lock on their
//! own; this keeps one pod's ADD and DEL from interleaving).

mod config;
mod exec;
mod result;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::config::NetworkConfig;
use berth_core::pod::ipam::Subnet;
use berth_core::pod::ports::{Network, NetworkRequest, NetworkResult, PodError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::state::{dir_lock, write_json};
use config::ConfList;
use exec::Invocation;

pub struct CniNetwork {
    conf_dir: PathBuf,
    /// CNI_PATH (may list several directories, ':'-separated).
    bin_path: String,
    cache_dir: PathBuf,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// What ADD used and returned, for DEL and CHECK.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    config: Value,
    result: Value,
    runtime_config: Map<String, Value>,
}

fn failed(e: impl std::fmt::Display) -> PodError {
    PodError::failed("cni", e)
}

const LOOPBACK_VERSION: &str = "0.3.1";

impl CniNetwork {
    /// `state_dir` is `<root_dir>/network`; the result cache lives in its `cni/` folder.
    pub fn new(cfg: &NetworkConfig, state_dir: PathBuf) -> Result<Self, PodError> {
        if cfg.cni_conf_dir.as_os_str().is_empty() {
            return Err(PodError::InvalidArgument(
                "network.cni_conf_dir is not set".into(),
            ));
        }
        Ok(Self {
            conf_dir: cfg.cni_conf_dir.clone(),
            bin_path: cfg.cni_bin_dir.to_string_lossy().into_owned(),
            lock: dir_lock(&state_dir),
            cache_dir: state_dir.join("cni"),
        })
    }

    fn cache_path(&self, pod_id: &str) -> PathBuf {
        let safe: String = pod_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        self.cache_dir.join(format!("{safe}.json"))
    }

    fn read_cache(&self, pod_id: &str) -> Option<Cached> {
        let bytes = std::fs::read(self.cache_path(pod_id)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(pod = pod_id, error = %e, "ignoring unreadable CNI result cache");
                None
            }
        }
    }

    fn args(req: &NetworkRequest) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            req.pod_namespace, req.pod_name, req.pod_id
        )
    }

    fn runtime_config(req: &NetworkRequest) -> Map<String, Value> {
        let ports: Vec<Value> = req
            .port_mappings
            .iter()
            .filter(|m| m.host_port != 0)
            .map(|m| {
                json!({"hostPort": m.host_port, "containerPort": m.container_port,
                    "protocol": m.protocol.as_str(),
                    "hostIP": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default()})
            })
            .collect();
        let mut rc = Map::new();
        rc.insert("portMappings".into(), Value::Array(ports));
        rc
    }

    fn loopback_config() -> Value {
        json!({"cniVersion": LOOPBACK_VERSION, "name": "cni-loopback", "type": "loopback"})
    }

    /// DEL through the list in reverse, then loopback. Errors of the network's plugins are
    /// returned (the cache stays so a retry can finish); loopback's only logged, `lo`
    /// dies with the namespace anyway.
    async fn delete(
        &self,
        req: &NetworkRequest,
        list: &ConfList,
        cached: Option<&Cached>,
    ) -> Result<(), String> {
        let args = Self::args(req);
        let rc = cached.map_or_else(|| Self::runtime_config(req), |c| c.runtime_config.clone());
        let inv = Invocation {
            container_id: &req.pod_id,
            netns: &req.netns,
            ifname: "eth0",
            path: &self.bin_path,
            args: &args,
        };
        let prev = cached
            .map(|c| &c.result)
            .filter(|r| !r.is_null() && list.supports_check());
        let mut first_err = None;
        for i in (0..list.plugins.len()).rev() {
            let conf = list.plugin_config(i, prev, &rc);
            if let Err(e) = exec::run(list.plugin_type(i), "DEL", &inv, &conf).await {
                first_err.get_or_insert(e);
            }
        }
        let lo = Invocation {
            ifname: "lo",
            ..inv
        };
        if let Err(e) = exec::run("loopback", "DEL", &lo, &Self::loopback_config()).await {
            tracing::debug!(pod = %req.pod_id, error = %e, "loopback DEL");
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn add(
        &self,
        req: &NetworkRequest,
        list: &ConfList,
        rc: &Map<String, Value>,
    ) -> Result<Value, String> {
        let args = Self::args(req);
        let inv = Invocation {
            container_id: &req.pod_id,
            netns: &req.netns,
            ifname: "eth0",
            path: &self.bin_path,
            args: &args,
        };
        let lo = Invocation {
            ifname: "lo",
            ..inv.clone()
        };
        exec::run("loopback", "ADD", &lo, &Self::loopback_config()).await?;
        let mut prev: Option<Value> = None;
        for i in 0..list.plugins.len() {
            let conf = list.plugin_config(i, prev.as_ref(), rc);
            prev = Some(exec::run(list.plugin_type(i), "ADD", &inv, &conf).await?);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// CNI CHECK of a set-up pod (spec 0.4.0+ configs; older ones have no CHECK).
    pub async fn check(&self, req: &NetworkRequest) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        let cached = self
            .read_cache(&req.pod_id)
            .ok_or_else(|| failed(format!("pod {} has no CNI result (not set up)", req.pod_id)))?;
        let list = ConfList::from_json(&cached.config).map_err(failed)?;
        if !list.supports_check() {
            return Ok(());
        }
        let args = Self::args(req);
        let inv = Invocation {
            container_id: &req.pod_id,
            netns: &req.netns,
            ifname: "eth0",
            path: &self.bin_path,
            args: &args,
        };
        for i in 0..list.plugins.len() {
            let conf = list.plugin_config(i, Some(&cached.result), &cached.runtime_config);
            exec::run(list.plugin_type(i), "CHECK", &inv, &conf)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    fn plugins_missing(&self, list: &ConfList) -> Option<String> {
        let types = (0..list.plugins.len())
            .map(|i| list.plugin_type(i))
            .chain(["loopback"]);
        for t in types {
            if !std::env::split_paths(&self.bin_path).any(|d| d.join(t).is_file()) {
                return Some(format!(
                    "CNI plugin {t:?} (used by {}) not found in {}",
                    list.source.display(),
                    self.bin_path
                ));
            }
        }
        None
    }
}

fn remove_file(path: &Path) -> Result<(), PodError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(format!("{}: {e}", path.display()))),
    }
}

#[async_trait]
impl Network for CniNetwork {
    async fn setup(&self, req: &NetworkRequest) -> Result<NetworkResult, PodError> {
        if let Some(n) = req.networks.iter().find(|n| !n.id.is_empty()) {
            return Err(PodError::InvalidArgument(format!(
                "network {}: named networks need berth's built-in bridge network, not CNI",
                n.id
            )));
        }
        let _guard = self.lock.lock().await;
        let list = config::load_dir(&self.conf_dir).map_err(failed)?;
        // A retry after an ADD that succeeded: undo it first, plugins do not expect ADD twice.
        if let Some(old) = self.read_cache(&req.pod_id) {
            let old_list = ConfList::from_json(&old.config).map_err(failed)?;
            self.delete(req, &old_list, Some(&old))
                .await
                .map_err(failed)?;
            remove_file(&self.cache_path(&req.pod_id))?;
        }
        let rc = Self::runtime_config(req);
        let result = match self.add(req, &list, &rc).await {
            Ok(r) => r,
            Err(e) => {
                if let Err(undo) = self.delete(req, &list, None).await {
                    tracing::warn!(pod = %req.pod_id, error = %undo, "rolling back CNI ADD failed");
                }
                return Err(failed(e));
            }
        };
        let cached = Cached {
            config: list.to_json(),
            result,
            runtime_config: rc,
        };
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| failed(format!("{}: {e}", self.cache_dir.display())))?;
        if let Err(e) = write_json(&self.cache_path(&req.pod_id), &cached) {
            let _ = self.delete(req, &list, Some(&cached)).await;
            return Err(e);
        }
        let mut ips = result::pod_ips(&cached.result).into_iter();
        Ok(NetworkResult {
            ip: ips.next(),
            additional_ips: ips.collect(),
            attachments: Vec::new(),
        })
    }

    async fn teardown(&self, req: &NetworkRequest) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        let cached = self.read_cache(&req.pod_id);
        let list = match &cached {
            Some(c) => ConfList::from_json(&c.config).map_err(failed)?,
            None => match config::load_dir(&self.conf_dir) {
                Ok(l) => l,
                // Never set up here and no config to run DEL with: nothing to undo.
                Err(_) => return Ok(()),
            },
        };
        self.delete(req, &list, cached.as_ref())
            .await
            .map_err(failed)?;
        remove_file(&self.cache_path(&req.pod_id))
    }

    fn ready(&self) -> Result<(), String> {
        let list = config::load_dir(&self.conf_dir)?;
        self.plugins_missing(&list).map_or(Ok(()), Err)
    }

    /// The pod CIDR belongs to the CNI config (e.g. host-local's ranges); nothing to do.
    async fn set_pod_cidr(&self, cidr: Subnet) -> Result<(), PodError> {
        tracing::info!(%cidr, "pod CIDR update ignored: CNI plugins allocate addresses");
        Ok(())
    }
}
