//! Running a pod: a transaction. Each acquired resource pushes its undo; any failure
//! unwinds them in reverse, so a failed pod leaves nothing. The transaction runs in its own
//! task (`delivery::run_detached`): when the client gave up before the answer (the kubelet's
//! timeout), the next identical request gets the pod, once; otherwise a name in use is
//! AlreadyExists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::pod::cgroup::pod_cgroup;
use berth_core::pod::files;
use berth_core::pod::networks::PodNetOptions;
use berth_core::pod::ports::{NamespaceRequest, PodError, PodFilesRequest};
use berth_core::pod::record::{
    DnsConfig, NamespaceMode, NamespaceModes, PodNamespaces, PodRecord, PodState, PortMapping,
    RECORD_VERSION, name_key,
};
use berth_core::pod::sysctl;
use berth_core::pod::userns::UserNamespace;
use sha2::{Digest as _, Sha256};

use crate::delivery::run_detached;
use crate::events::EventKind;
use crate::pods::Pods;
use crate::pods::teardown::{network_request, release_all};
use crate::{Engine, EngineError};

/// A pod to run, as a front door asks for it (already converted from its own protocol).
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    /// "" for berth's own runtime; otherwise one of `runtime.handlers`.
    pub runtime_handler: String,
    /// "" for the pod's name (cut to 63 characters).
    pub hostname: String,
    /// Where the containers' log files go; "" for none.
    pub log_directory: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub modes: NamespaceModes,
    /// Some: the pod gets its own user namespace with these mappings.
    pub userns: Option<UserNamespace>,
    pub port_mappings: Vec<PortMapping>,
    pub dns: DnsConfig,
    pub sysctls: BTreeMap<String, String>,
    /// Named networks, a network namespace to join, extra hosts (Docker's).
    pub net: PodNetOptions,
    /// The cgroup parent (the kubelet's QoS slice or path); "" for berth's default.
    pub cgroup_parent: String,
    /// The front door's own request, kept in the record: an identical retry after a lost
    /// answer is recognised by it, and status reports show it.
    pub config: serde_json::Value,
}

impl Engine {
    /// Runs a pod and answers its id. Messages of InvalidArgument errors name the field
    /// that was wrong; a front door may prefix them with its method.
    pub async fn run_pod(self: &Arc<Self>, spec: PodSpec) -> Result<String, EngineError> {
        let rec = self.new_pod_record(spec)?;
        let pods = &self.pods;

        // Reserve the name, or find the pod a previous identical request created and could
        // not deliver.
        let key = rec.name_key();
        let lock = loop {
            let names = pods.names.lock().await;
            if let Some(existing) = pods.store.find(|r| r.name_key() == key) {
                drop(names);
                if existing.state == PodState::Creating {
                    // The first request is still working: wait for it, then look again.
                    let _ = pods.lock_of(&existing.id).lock_owned().await;
                    if pods
                        .store
                        .get(&existing.id)
                        .is_some_and(|r| r.state == PodState::Creating)
                    {
                        return Err(EngineError::Unavailable(format!(
                            "pod {key} ({}) is still being created; retry",
                            existing.id
                        )));
                    }
                    continue;
                }
                if existing.state == PodState::Ready
                    && existing.config == rec.config
                    && existing.runtime_handler == rec.runtime_handler
                    && pods.undelivered.take(&existing.id)
                {
                    tracing::info!(pod = %existing.id, "pod creation retried after a lost answer: returning the pod already created");
                    return Ok(existing.id);
                }
                return Err(EngineError::AlreadyExists(format!(
                    "pod name {key} is already in use by pod {}; remove it first or use another attempt number",
                    existing.id
                )));
            }
            let lock = pods.lock_of(&rec.id).lock_owned().await;
            // The reservation holds nothing yet; the first resource that outlives a reboot
            // (the pod's IP in the network state) is taken after the durable write that
            // records the namespaces, so a host crash cannot leave it unrecorded.
            pods.store.put_unsynced(&rec)?;
            break lock;
        };

        let (work, lost) = (self.clone(), self.clone());
        let work = async move { transaction(&work.pods, rec).await };
        let lost = move |id: &String| lost.pods.undelivered.mark(id);
        run_detached("running a pod", lock, work, lost).await
    }

    /// Checks what the protocol-neutral rules say of a pod and builds its record (Creating).
    fn new_pod_record(&self, spec: PodSpec) -> Result<PodRecord, EngineError> {
        let invalid = EngineError::InvalidArgument;
        if spec.name.is_empty() {
            return Err(invalid("the pod's name is empty".into()));
        }
        let handler = spec.runtime_handler.as_str();
        let handlers = &self.info.config.runtime.handlers;
        if !handler.is_empty() && !handlers.iter().any(|h| h == handler) {
            return Err(invalid(format!(
                "runtime handler {handler:?} is not configured (configured: {handlers:?}; runtime.handlers in berth.toml)"
            )));
        }
        let modes = spec.modes;
        if spec.userns.is_some() && !self.info.features_of(handler).user_namespaces {
            return Err(invalid(format!(
                "runtime handler {handler:?} cannot run pods in a user namespace on this node \
                 (Status reports user_namespaces per handler); use mode NODE (hostUsers: true)"
            )));
        }
        if spec.userns.is_some() {
            // As the kubelet's validation: a pod in a user namespace shares none of the
            // node's namespaces (they belong to the node's user namespace).
            for (what, mode) in [
                ("network", modes.network),
                ("pid", modes.pid),
                ("ipc", modes.ipc),
            ] {
                if mode == NamespaceMode::Node {
                    return Err(invalid(format!(
                        "namespace_options.{what} is NODE, which a pod in its own user namespace \
                         (userns_options mode POD) cannot use"
                    )));
                }
            }
        }
        sysctl::validate(&spec.sysctls, &modes).map_err(|e| invalid(e.to_string()))?;
        if spec.net.join.is_some() && modes.network != NamespaceMode::Pod {
            return Err(invalid(
                "joining another pod's network namespace needs network mode POD".into(),
            ));
        }
        if modes.network == NamespaceMode::Node && !spec.hostname.is_empty() {
            return Err(invalid(format!(
                "hostname {:?} cannot be set for a pod in the node's network namespace \
                 (it shares the node's UTS namespace and would rename the node); leave it empty",
                spec.hostname
            )));
        }
        let hostname = if modes.network == NamespaceMode::Node {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        } else if spec.hostname.is_empty() {
            spec.name.chars().take(63).collect()
        } else {
            spec.hostname.clone()
        };
        if modes.network != NamespaceMode::Node && !files::valid_hostname(&hostname) {
            return Err(invalid(format!(
                "hostname {hostname:?} is not valid (1..=64 letters, digits, '-' or '.')"
            )));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default();
        let key = name_key(&spec.name, &spec.namespace, &spec.uid, spec.attempt);
        let id = new_id(&key, now);
        let cgroup = pod_cgroup(
            self.info.config.runtime.cgroup_driver,
            &spec.cgroup_parent,
            &id,
        )
        .map_err(|e| invalid(e.to_string()))?;
        Ok(PodRecord {
            version: RECORD_VERSION,
            dir: self.pods.pod_dir(&id),
            id,
            name: spec.name,
            namespace: spec.namespace,
            uid: spec.uid,
            attempt: spec.attempt,
            state: PodState::Creating,
            created_at: now,
            hostname,
            log_directory: spec.log_directory,
            runtime_handler: spec.runtime_handler,
            labels: spec.labels,
            annotations: spec.annotations,
            modes,
            namespaces: PodNamespaces::default(),
            port_mappings: spec.port_mappings,
            dns: spec.dns,
            sysctls: spec.sysctls,
            cgroup: Some(cgroup),
            ip: None,
            additional_ips: Vec::new(),
            config: spec.config,
            userns: spec.userns,
            net: spec.net,
            attachments: Vec::new(),
        })
    }
}

/// Creates the reserved pod, or undoes every step.
async fn transaction(pods: &Pods, mut rec: PodRecord) -> Result<String, EngineError> {
    match create(pods, &mut rec).await {
        Ok(()) => {
            // As containerd: a new sandbox is created and started at once.
            pods.events.pod(EventKind::Created, &rec, Vec::new);
            pods.events.pod(EventKind::Started, &rec, Vec::new);
            Ok(rec.id.clone())
        }
        Err(e) => {
            tracing::warn!(pod = %rec.id, error = %e, "running the pod failed; undoing");
            // The record is still Creating: if this cleanup fails too, start-up recovery
            // finishes it.
            match release_all(pods, &rec).await {
                Ok(()) => {
                    let _ = pods.store.delete(&rec.id);
                    pods.forget_lock(&rec.id);
                }
                Err(e2) => tracing::error!(pod = %rec.id, error = %e2, "undo incomplete"),
            }
            Err(e.into())
        }
    }
}

/// 64 hex digits, unique per request: sha256 over the name, time, pid and a counter.
fn new_id(key: &str, now: i64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(h.finalize())
}

/// The leaf of the pod cgroup that holds the pod's init.
pub const INIT_CGROUP: &str = "pod-init";

fn fault(pods: &Pods, step: &'static str) -> Result<(), PodError> {
    if pods.fault_inject.as_deref() == Some(step) {
        return Err(PodError::failed(
            step,
            "injected failure (BERTHD_FAULT_INJECT)",
        ));
    }
    Ok(())
}

/// Acquires the pod's resources in order, recording each in `rec` (persisted) so that
/// both the rollback and a crash-recovery know what to release.
pub(crate) async fn create(pods: &Pods, rec: &mut PodRecord) -> Result<(), PodError> {
    let p = &pods.ports;
    if !rec.log_directory.is_empty() {
        std::fs::create_dir_all(&rec.log_directory).map_err(|e| {
            PodError::failed("log directory", format!("{}: {e}", rec.log_directory))
        })?;
    }
    if let Some(cg) = &rec.cgroup {
        p.cgroups.create_pod(cg).await?;
    }
    fault(pods, "cgroup")?;

    let ns_req = NamespaceRequest {
        pod_id: rec.id.clone(),
        pin_dir: pods.pin_dir(&rec.id),
        modes: rec.modes,
        hostname: rec.hostname.clone(),
        userns: rec.userns.clone(),
        join_net: match &rec.net.join {
            Some(other) => Some(joined_netns(pods, other)?),
            None => None,
        },
    };
    rec.namespaces = p.namespaces.create(&ns_req).await?;
    persist(pods, rec)?;
    fault(pods, "namespaces")?;
    // The pod's init is accounted with the pod, in a leaf of the pod cgroup: on cgroup v2
    // a cgroup with processes cannot also hand controllers to its containers' cgroups.
    if let (Some(cg), Some(pid)) = (&rec.cgroup, rec.namespaces.init_pid) {
        let leaf = format!("{cg}/{INIT_CGROUP}");
        p.cgroups.create_pod(&leaf).await?;
        p.cgroups.add_process(&leaf, pid).await?;
    }

    let sysctls = sysctl::validate(&rec.sysctls, &rec.modes)
        .map_err(|e| PodError::InvalidArgument(e.to_string()))?;
    p.namespaces
        .apply_sysctls(&rec.namespaces, &sysctls)
        .await?;
    fault(pods, "sysctls")?;

    let host_hosts = || std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let hosts = if rec.modes.network == NamespaceMode::Node {
        host_hosts()
    } else {
        files::hosts_with(&rec.hostname, None, &rec.net.extra_hosts)
    };
    p.files
        .prepare(&PodFilesRequest {
            dir: rec.dir.clone(),
            resolv_conf: files::resolv_conf(&rec.dns),
            hosts,
            hostname: rec.hostname.clone(),
            private_shm: rec.modes.ipc != NamespaceMode::Node,
            shm_size_bytes: pods_shm_size(pods),
        })
        .await?;
    fault(pods, "files")?;

    if rec.modes.network == NamespaceMode::Pod && rec.net.join.is_none() {
        let net = p.network.setup(&network_request(pods, rec)).await?;
        rec.ip = net.ip;
        rec.additional_ips = net.additional_ips;
        rec.attachments = net.attachments;
        // Not persisted here: the network keeps its own state by pod id, and the final
        // write below records the IPs.
        fault(pods, "network")?;
        p.files
            .write_hosts(
                &rec.dir,
                &files::hosts_with(&rec.hostname, rec.ip, &rec.net.extra_hosts),
            )
            .await?;
    }

    // NotReady: a pod made again in place (`revive.rs`); its record stayed NotReady all
    // along, so a crash meanwhile leaves a stopped pod, not a half-made one.
    match rec.state {
        PodState::NotReady => rec.revive(),
        _ => rec.transition(PodState::Ready),
    }
    .map_err(|e| PodError::failed("record", e))?;
    fault(pods, "record")?;
    persist(pods, rec)
}

/// The pinned network namespace of pod `other`, which must be ready.
fn joined_netns(pods: &Pods, other: &str) -> Result<std::path::PathBuf, PodError> {
    let target = pods
        .store
        .get(other)
        .filter(|r| r.state == PodState::Ready)
        .ok_or_else(|| {
            PodError::InvalidArgument(format!(
                "pod {other}, whose network namespace this pod joins, is not running"
            ))
        })?;
    target.namespaces.net.clone().ok_or_else(|| {
        PodError::InvalidArgument(format!(
            "pod {other} has no network namespace of its own to join"
        ))
    })
}

fn pods_shm_size(pods: &Pods) -> u64 {
    pods.shm_size
}

fn persist(pods: &Pods, rec: &PodRecord) -> Result<(), PodError> {
    pods.store
        .put(rec)
        .map_err(|e| PodError::failed("record", e))
}
