//! Releasing what a pod holds. Shared by StopPodSandbox, RemovePodSandbox, the rollback of a
//! failed RunPodSandbox and recovery at start-up. Every step is idempotent.

use berth_core::pod::ports::{NetworkRequest, PodError};
use berth_core::pod::record::{NamespaceMode, PodRecord};

use super::Pods;

pub fn network_request(pods: &Pods, r: &PodRecord) -> NetworkRequest {
    NetworkRequest {
        pod_id: r.id.clone(),
        pod_name: r.name.clone(),
        pod_namespace: r.namespace.clone(),
        netns: r
            .namespaces
            .net
            .clone()
            .unwrap_or_else(|| pods.pin_dir(&r.id).join("net")),
        port_mappings: r.port_mappings.clone(),
        networks: r.net.networks.clone(),
    }
}

/// Disconnects the pod from the network (Stop).
pub async fn stop_network(pods: &Pods, r: &PodRecord) -> Result<(), PodError> {
    // A pod in another pod's network namespace has no network of its own to undo.
    if r.modes.network == NamespaceMode::Pod && r.net.join.is_none() {
        pods.ports
            .network
            .teardown(&network_request(pods, r))
            .await?;
    }
    Ok(())
}

/// Releases everything: network, files, namespaces (and the pod's init), cgroup.
/// Tries every step even when one fails, then reports the first failure.
pub async fn release_all(pods: &Pods, r: &PodRecord) -> Result<(), PodError> {
    let mut first: Option<PodError> = None;
    let mut note = |res: Result<(), PodError>| {
        if let Err(e) = res {
            tracing::warn!(pod = %r.id, error = %e, "releasing pod resources");
            first.get_or_insert(e);
        }
    };
    note(stop_network(pods, r).await);
    note(pods.ports.files.remove(&r.dir).await);
    note(
        pods.ports
            .namespaces
            .remove(&r.namespaces, &pods.pin_dir(&r.id))
            .await,
    );
    if let Some(cg) = &r.cgroup {
        note(pods.ports.cgroups.remove_pod(cg).await);
    }
    match first {
        Some(e) => Err(e),
        None => {
            let _ = std::fs::remove_dir(pods.pod_dir(&r.id));
            Ok(())
        }
    }
}
