//! `CreateContainer`: rootfs, spec, bundle, runtime create — undone in reverse on failure.
//! Like RunPodSandbox, the transaction runs in its own task: a name in use is AlreadyExists,
//! except for the one identical retry after an answer the client never got.

use std::path::PathBuf;
use std::sync::Arc;

use berth_api::cri::{CreateContainerRequest, CreateContainerResponse};
use berth_core::container::record::{
    CONTAINER_RECORD_VERSION, ContainerRecord, ContainerState, ProcessUser, container_name_key,
};
use berth_core::container::{
    self, CgroupCaps, ContainerInput, ImageConfig, SeccompProfile, security,
};
use berth_core::image::Image;
use berth_core::pod::record::{PodRecord, PodState};
use berth_core::runtime::{CreateRequest, RuntimeError, StdioConfig};
use sha2::{Digest as _, Sha256};
use tonic::Status;

use crate::Cri;
use crate::containers::lifecycle::now_ns;
use crate::containers::{Containers, convert, host};
use crate::delivery::run_detached;
use crate::error::{runtime_error_status, store_status};
use crate::pods::convert::sorted;

pub async fn handle(
    cri: &Arc<Cri>,
    req: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let invalid = |m: String| Status::invalid_argument(format!("CreateContainer: {m}"));
    let pod = cri.pods.resolve(&req.pod_sandbox_id)?;
    if pod.state != PodState::Ready {
        return Err(Status::failed_precondition(format!(
            "pod sandbox {} is not ready (stopped or being created)",
            pod.id
        )));
    }
    let cfg = req
        .config
        .ok_or_else(|| invalid("config is missing".into()))?;
    let meta = cfg
        .metadata
        .clone()
        .ok_or_else(|| invalid("config.metadata is missing".into()))?;
    if meta.name.is_empty() {
        return Err(invalid("config.metadata.name is empty".into()));
    }
    let image_name = cfg
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    if image_name.is_empty() {
        return Err(invalid("config.image.image is empty".into()));
    }
    let target_pid = target_pid(cri, &cfg).await;
    let ccfg = convert::config(&cfg, target_pid).map_err(invalid)?;
    let ns_opts = cfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    // A container shares its pod's user namespace; it may restate the pod's mapping (as
    // the kubelet does) but not ask for another, nor for the node's in a pod that has one.
    if ns_opts.is_some_and(|o| o.userns_options.is_some()) {
        let asked = crate::pods::convert::userns("container", ns_opts).map_err(invalid)?;
        if asked != pod.userns {
            return Err(invalid(format!(
                "namespace_options.userns_options {} differs from its pod's {} (containers share the pod's user namespace)",
                describe_userns(asked.as_ref()),
                describe_userns(pod.userns.as_ref())
            )));
        }
    }
    if let Some(m) = ccfg.mounts.iter().find(|m| m.recursive_read_only)
        && !cri
            .info
            .features_of(&pod.runtime_handler)
            .recursive_read_only_mounts
    {
        return Err(invalid(format!(
            "mount {:?} asks for recursive_read_only, which runtime handler {:?} cannot do on this node",
            m.container_path, pod.runtime_handler
        )));
    }
    let image = cri.images.find(&image_name).ok_or_else(|| {
        Status::not_found(format!(
            "image {image_name:?} is not present on this node; pull it first"
        ))
    })?;
    let c = &cri.containers;

    // Reserve the name, or find the container a previous identical request created and
    // could not deliver.
    let key = container_name_key(&meta.name, &pod.id, meta.attempt);
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
                return Err(Status::unavailable(format!(
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
            tracing::info!(container = %existing.id, "CreateContainer retried after a lost answer: returning the container already created");
            return Ok(CreateContainerResponse {
                container_id: existing.id,
            });
        }
        return Err(Status::already_exists(format!(
            "container name {:?} (attempt {}) in pod {} is already in use by container {}; remove it first or use another attempt number",
            meta.name, meta.attempt, pod.id, existing.id
        )));
    };
    let id = new_id(&key);
    let log_path = (!pod.log_directory.is_empty() && !cfg.log_path.is_empty())
        .then(|| PathBuf::from(&pod.log_directory).join(&cfg.log_path));
    let rec = ContainerRecord {
        version: CONTAINER_RECORD_VERSION,
        id: id.clone(),
        pod_id: pod.id.clone(),
        name: meta.name.clone(),
        attempt: meta.attempt,
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
        labels: sorted(&cfg.labels),
        annotations: sorted(&cfg.annotations),
        log_path,
        log_path_cri: cfg.log_path.clone(),
        bundle: c.bundle(&id),
        stop_signal: None,
        handler: pod.runtime_handler.clone(),
        config: ccfg,
        user: None,
    };
    let lock = c.lock_of(&id).lock_owned().await;
    c.store.put(&rec).map_err(store_status)?;
    drop(names);

    let (work_cri, lost_cri) = (cri.clone(), cri.clone());
    let work = async move { transaction(&work_cri, pod, image, rec).await };
    let lost =
        move |r: &CreateContainerResponse| lost_cri.containers.undelivered.mark(&r.container_id);
    run_detached("CreateContainer", lock, work, lost).await
}

/// Creates the reserved container, or undoes every step.
async fn transaction(
    cri: &Cri,
    pod: PodRecord,
    image: Image,
    mut rec: ContainerRecord,
) -> Result<CreateContainerResponse, Status> {
    let c = &cri.containers;
    let id = rec.id.clone();
    let res = create(cri, c, &pod, &image, &mut rec).await;
    match res {
        Ok(()) => Ok(CreateContainerResponse {
            container_id: id.clone(),
        }),
        Err(e) => {
            tracing::warn!(container = %id, error = %e, "CreateContainer failed; undoing");
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

/// `namespace_options.target_id`: the pid of that (running) container.
async fn target_pid(cri: &Cri, cfg: &berth_api::cri::ContainerConfig) -> Option<i32> {
    let target = cfg
        .linux
        .as_ref()?
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()?
        .target_id
        .clone();
    if target.is_empty() {
        return None;
    }
    let rec = cri.containers.store.resolve(&target).ok()??;
    cri.containers
        .ports
        .runtime
        .state(&rec.pod_id, &rec.id)
        .await
        .ok()?
        .pid
}

fn describe_userns(u: Option<&berth_core::pod::userns::UserNamespace>) -> String {
    match u {
        None => "(the node's user namespace)".into(),
        Some(u) => format!("(uids {:?}, gids {:?})", u.uids, u.gids),
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

fn pod_privileged(pod: &PodRecord) -> bool {
    pod.config
        .pointer("/linux/security_context/privileged")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

async fn create(
    cri: &Cri,
    c: &Containers,
    pod: &PodRecord,
    image: &Image,
    rec: &mut ContainerRecord,
) -> Result<(), Status> {
    let rt_status = runtime_error_status;
    let rootfs = c
        .ports
        .rootfs
        .mount(&rec.bundle, &image.snapshots, false)
        .await
        .map_err(rt_status)?;
    let image_config = ImageConfig::from_json(&image.config)
        .map_err(|e| Status::failed_precondition(format!("image {}: {e}", image.id)))?;
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
                Status::invalid_argument(format!("seccomp profile {path:?} cannot be read: {e}"))
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
        pod_privileged: pod_privileged(pod),
        image: &image_config,
        image_name: &rec.image,
        passwd: passwd.as_deref(),
        group: group.as_deref(),
        rootfs: std::path::Path::new("rootfs"),
        cgroup_driver: cri.info.config.runtime.cgroup_driver,
        cgroups: CgroupCaps {
            version: c.ports.cgroup_version,
            swap: true,
            hugetlb: true,
        },
        node_hostname: &node_hostname,
        pids_limit: None,
        device_nodes: &device_nodes,
        host_devices: &host_devices,
        seccomp_localhost: seccomp_localhost.as_deref(),
        host_caps: host_caps.as_deref(),
    })
    .map_err(|e| Status::invalid_argument(format!("CreateContainer {}: {e}", rec.name)))?;
    rec.user = spec.process().as_ref().map(|p| ProcessUser::from(p.user()));
    warn_missing_caps(rec, host_caps.as_deref());
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| Status::internal(e.to_string()))?;
    write_atomic(&rec.bundle.join("config.json"), &json)
        .map_err(|e| rt_status(RuntimeError::failed("writing config.json", e)))?;
    if let Some(log) = &rec.log_path
        && let Some(dir) = log.parent()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            Status::internal(format!("creating log directory {}: {e}", dir.display()))
        })?;
    }
    c.ports
        .runtime
        .create(&CreateRequest {
            pod_id: rec.pod_id.clone(),
            container_id: rec.id.clone(),
            bundle: rec.bundle.clone(),
            handler: rec.handler.clone(),
            stdio: StdioConfig {
                log_path: rec.log_path.clone(),
                tty: rec.config.tty,
                stdin: rec.config.stdin,
                stdin_once: rec.config.stdin_once,
            },
        })
        .await
        .map_err(rt_status)?;
    rec.transition(ContainerState::Created)
        .map_err(|e| Status::internal(e.to_string()))?;
    c.store.put(rec).map_err(store_status)?;
    c.events.container(
        berth_api::cri::ContainerEventType::ContainerCreatedEvent,
        rec,
        &c.store,
    );
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
