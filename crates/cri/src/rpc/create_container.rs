//! `CreateContainer`: the CRI config becomes core's `ContainerConfig` (with the CRI-only
//! rules: a TARGET pid namespace, a restated user namespace); the engine creates the
//! container as a transaction (rollback on failure, the one identical retry after a lost
//! answer).

use std::sync::Arc;

use berth_api::cri::{CreateContainerRequest, CreateContainerResponse};
use berth_core::pod::PodRecord;
use berth_engine::ContainerSpec;
use tonic::Status;

use crate::Cri;
use crate::containers::convert;
use crate::error::{engine_status, engine_status_in};
use crate::pods::convert::{sorted, userns};

pub async fn handle(
    cri: &Arc<Cri>,
    req: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let invalid = |m: String| Status::invalid_argument(format!("CreateContainer: {m}"));
    let pod = cri
        .engine
        .pods
        .ready(&req.pod_sandbox_id)
        .map_err(engine_status)?;
    let cfg = req
        .config
        .ok_or_else(|| invalid("config is missing".into()))?;
    let meta = cfg
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("config.metadata is missing".into()))?;
    if meta.name.is_empty() {
        return Err(invalid("config.metadata.name is empty".into()));
    }
    if cfg.image.as_ref().is_none_or(|i| i.image.is_empty()) {
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
        let asked = userns("container", ns_opts).map_err(invalid)?;
        if asked != pod.userns {
            return Err(invalid(format!(
                "namespace_options.userns_options {} differs from its pod's {} (containers share the pod's user namespace)",
                describe_userns(asked.as_ref()),
                describe_userns(pod.userns.as_ref())
            )));
        }
    }
    let spec = ContainerSpec {
        pod_id: pod.id.clone(),
        config: ccfg,
        labels: sorted(&cfg.labels),
        annotations: sorted(&cfg.annotations),
        log_path: cfg.log_path.clone(),
        pod_privileged: pod_privileged(&pod),
        // A CRI container runs once: the kubelet makes a new one.
        restart: None,
    };
    let id = cri
        .engine
        .create_container(spec)
        .await
        .map_err(engine_status_in("CreateContainer"))?;
    Ok(CreateContainerResponse { container_id: id })
}

/// `namespace_options.target_id`: the pid of that (running) container.
async fn target_pid(cri: &Cri, cfg: &berth_api::cri::ContainerConfig) -> Option<i32> {
    let target = &cfg
        .linux
        .as_ref()?
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()?
        .target_id;
    if target.is_empty() {
        return None;
    }
    cri.engine.container_pid(target).await
}

fn describe_userns(u: Option<&berth_core::pod::userns::UserNamespace>) -> String {
    match u {
        None => "(the node's user namespace)".into(),
        Some(u) => format!("(uids {:?}, gids {:?})", u.uids, u.gids),
    }
}

/// The pod's CRI config, as RunPodSandbox stored it in the record.
fn pod_privileged(pod: &PodRecord) -> bool {
    pod.config
        .pointer("/linux/security_context/privileged")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}
