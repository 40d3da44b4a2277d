//! Creating a container: rootfs, spec, bundle, runtime create — undone in reverse on
//! failure. Like running a pod, the transaction runs in its own task: a name in use is
//! AlreadyExists, except for the one identical retry after an answer the client never got.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_core::container::record::{
    CONTAINER_RECORD_VERSION, ContainerRecord, ContainerState, ProcessUser, container_name_key,
};
use berth_core::container::restart::RestartPolicy;
use berth_core::container::{
    self, CgroupCaps, ContainerConfig, ContainerInput, ImageConfig, SeccompProfile, security,
};
use berth_core::image::Image;
use berth_core::pod::record::PodRecord;
use berth_core::runtime::RuntimeError;
use sha2::{Digest as _, Sha256};

use crate::containers::lifecycle::now_ns;
use crate::containers::{Containers, host};
use crate::delivery::run_detached;
use crate::events::EventKind;
use crate::{Engine, EngineError};

/// The container's pids.max, for a front door whose protocol has one (Docker's PidsLimit;
/// the CRI has none): a positive number of processes.
pub const PIDS_LIMIT_ANNOTATION: &str = "io.berth.pids-limit";

/// A container to create in a pod, as a front door asks for it.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The pod (full id or unique prefix); it must be ready.
    pub pod_id: String,
    /// Name, attempt, image, command, mounts, resources, security...
    pub config: ContainerConfig,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The log file, relative to the pod's log directory; "" for none.
    pub log_path: String,
    /// Whether the pod is privileged (privileged containers need a privileged pod).
    pub pod_privileged: bool,
    /// Some (a Docker container): it may be started again after it exited, keeping its
    /// writable layer and log, and this policy restarts it by itself. None (CRI): it runs
    /// once.
    pub restart: Option<RestartPolicy>,
}

impl Engine {
    /// Creates a container (not started) and answers its id. Messages of InvalidArgument
    /// errors name what was wrong; a front door may prefix them with its method.
    pub async fn create_container(
        self: &Arc<Self>,
        spec: ContainerSpec,
    ) -> Result<String, EngineError> {
        let invalid = EngineError::InvalidArgument;
        let pod = self.pods.ready(&spec.pod_id)?;
        let ccfg = spec.config;
        if ccfg.name.is_empty() {
            return Err(invalid("the container's name is empty".into()));
        }
        if ccfg.image.is_empty() {
            return Err(invalid("the container's image is empty".into()));
        }
        if let Some(m) = ccfg.mounts.iter().find(|m| m.recursive_read_only)
            && !self
                .info
                .features_of(&pod.runtime_handler)
                .recursive_read_only_mounts
        {
            return Err(invalid(format!(
                "mount {:?} asks for recursive_read_only, which runtime handler {:?} cannot do on this node",
                m.container_path, pod.runtime_handler
            )));
        }
        let image_name = ccfg.image.clone();
        let image = self.images.find(&image_name).ok_or_else(|| {
            EngineError::NotFound(format!(
                "image {image_name:?} is not present on this node; pull it first"
            ))
        })?;
        let c = &self.containers;

        // Reserve the name, or find the container a previous identical request created and
        // could not deliver.
        let key = container_name_key(&ccfg.name, &pod.id, ccfg.attempt);
        let names = loop {
            let names = c.names.lock().await;
            let Some(existing) = c.store.find(|r| r.name_key() == key) else {
                break names;
            };
            drop(names);
            if existing.state == ContainerState::Creating {
                // The first request is still working: wait for it, then look again.
                let _ = c.lock_of(&existing.id).lock_owned().await;
                if c.store
                    .get(&existing.id)
                    .is_some_and(|r| r.state == ContainerState::Creating)
                {
                    return Err(EngineError::Unavailable(format!(
                        "container {} is still being created; retry",
                        existing.id
                    )));
                }
                continue;
            }
            if existing.config == ccfg
                && existing.image == image_name
                && c.undelivered.take(&existing.id)
            {
                tracing::info!(container = %existing.id, "container creation retried after a lost answer: returning the container already created");
                return Ok(existing.id);
            }
            return Err(EngineError::AlreadyExists(format!(
                "container name {:?} (attempt {}) in pod {} is already in use by container {}; remove it first or use another attempt number",
                ccfg.name, ccfg.attempt, pod.id, existing.id
            )));
        };
        let id = new_id(&key);
        let log_path = (!pod.log_directory.is_empty() && !spec.log_path.is_empty())
            .then(|| PathBuf::from(&pod.log_directory).join(&spec.log_path));
        let rec = ContainerRecord {
            version: CONTAINER_RECORD_VERSION,
            id: id.clone(),
            pod_id: pod.id.clone(),
            name: ccfg.name.clone(),
            attempt: ccfg.attempt,
            state: ContainerState::Creating,
            image: image_name.clone(),
            image_id: image.id.to_string(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.to_string()),
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            labels: spec.labels,
            annotations: spec.annotations,
            log_path,
            log_path_cri: spec.log_path,
            bundle: c.bundle(&id),
            stop_signal: None,
            handler: pod.runtime_handler.clone(),
            config: ccfg,
            user: None,
            restart_policy: spec.restart,
            restart_count: 0,
            manually_stopped: false,
            paused: false,
        };
        let lock = c.lock_of(&id).lock_owned().await;
        c.store.put(&rec)?;
        drop(names);

        let (work, lost) = (self.clone(), self.clone());
        let privileged = spec.pod_privileged;
        let work = async move { transaction(&work, pod, privileged, image, rec).await };
        let lost = move |id: &String| lost.containers.undelivered.mark(id);
        run_detached("creating a container", lock, work, lost).await
    }
}

/// Creates the reserved container, or undoes every step.
async fn transaction(
    engine: &Engine,
    pod: PodRecord,
    pod_privileged: bool,
    image: Image,
    mut rec: ContainerRecord,
) -> Result<String, EngineError> {
    let c = &engine.containers;
    let id = rec.id.clone();
    let res = create(engine, c, &pod, pod_privileged, &image, &mut rec).await;
    match res {
        Ok(()) => Ok(id),
        Err(e) => {
            tracing::warn!(container = %id, error = %e, "creating the container failed; undoing");
            let rt = c.ports.runtime.delete(&rec.pod_id, &rec.id).await;
            let fs = c.ports.rootfs.remove(&rec.bundle).await;
            if rt.is_ok() && fs.is_ok() {
                let _ = c.store.delete(&id);
                c.forget_lock(&id);
            } else {
                tracing::error!(container = %id, runtime = ?rt.err(), rootfs = ?fs.err(), "undo incomplete; recovery retries at start");
            }
            Err(e)
        }
    }
}

fn new_id(key: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(b"container:");
    h.update(key.as_bytes());
    h.update(now_ns().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(h.finalize())
}

async fn create(
    engine: &Engine,
    c: &Containers,
    pod: &PodRecord,
    pod_privileged: bool,
    image: &Image,
    rec: &mut ContainerRecord,
) -> Result<(), EngineError> {
    let rootfs = c
        .ports
        .rootfs
        .mount(&rec.bundle, &image.snapshots, false)
        .await?;
    let image_config = ImageConfig::from_json(&image.config)
        .map_err(|e| EngineError::FailedPrecondition(format!("image {}: {e}", image.id)))?;
    rec.stop_signal = image_config.stop_signal.clone();
    let passwd = host::image_file(&rootfs, "etc/passwd");
    let group = host::image_file(&rootfs, "etc/group");
    let mut device_nodes = Vec::new();
    for d in &rec.config.devices {
        device_nodes.extend(host::device_nodes(&d.host_path));
    }
    let host_devices = if rec.config.security.privileged {
        host::walk(std::path::Path::new("/dev"))
    } else {
        Vec::new()
    };
    let seccomp_localhost = match &rec.config.security.seccomp {
        Some(SeccompProfile::Localhost(path)) => {
            Some(std::fs::read_to_string(path).map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "seccomp profile {path:?} cannot be read: {e}"
                ))
            })?)
        }
        _ => None,
    };
    let node_hostname = host::node_hostname();
    let host_caps = host::bounding_caps();
    let spec = container::build(&ContainerInput {
        id: &rec.id,
        config: &rec.config,
        pod,
        pod_privileged,
        image: &image_config,
        image_name: &rec.image,
        passwd: passwd.as_deref(),
        group: group.as_deref(),
        rootfs: std::path::Path::new("rootfs"),
        cgroup_driver: engine.info.config.runtime.cgroup_driver,
        cgroups: CgroupCaps {
            version: c.ports.cgroup_version,
            swap: true,
            hugetlb: true,
        },
        node_hostname: &node_hostname,
        pids_limit: rec
            .annotations
            .get(PIDS_LIMIT_ANNOTATION)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|l| *l > 0),
        device_nodes: &device_nodes,
        host_devices: &host_devices,
        seccomp_localhost: seccomp_localhost.as_deref(),
        host_caps: host_caps.as_deref(),
    })
    .map_err(|e| EngineError::InvalidArgument(format!("container {}: {e}", rec.name)))?;
    rec.user = spec.process().as_ref().map(|p| ProcessUser::from(p.user()));
    warn_missing_caps(rec, host_caps.as_deref());
    let json =
        serde_json::to_vec_pretty(&spec).map_err(|e| EngineError::Internal(e.to_string()))?;
    write_atomic(&rec.bundle.join("config.json"), &json)
        .map_err(|e| RuntimeError::failed("writing config.json", e))?;
    if let Some(log) = &rec.log_path
        && let Some(dir) = log.parent()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            EngineError::Internal(format!("creating log directory {}: {e}", dir.display()))
        })?;
    }
    c.ports.runtime.create(&super::create_request(rec)).await?;
    rec.transition(ContainerState::Created)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    c.store.put(rec)?;
    c.events.container(EventKind::Created, rec, &c.store);
    Ok(())
}

fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Capabilities asked for by name that berthd's own bounding set lacks cannot be granted;
/// the runtime leaves them out (a note in the monitor's log). Said here too, in berthd's log,
/// where an operator looks first.
fn warn_missing_caps(rec: &ContainerRecord, host_caps: Option<&[security::Capability]>) {
    let (Some(host), Some(caps)) = (host_caps, &rec.config.security.capabilities) else {
        return;
    };
    let missing: Vec<&str> = caps
        .add
        .iter()
        .filter(|n| security::parse_capability(n).is_ok_and(|c| !host.contains(&c)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        tracing::warn!(container = %rec.id, name = %rec.name, ?missing, "capabilities asked for are not in berthd's bounding set; the container runs without them");
    }
}
