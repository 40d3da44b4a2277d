//! Thin helpers over the CRI RuntimeService pod RPCs, shared by tests and the pods bench.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tonic::Status;
use tonic::transport::Channel;

use crate::cri::runtime_service_client::RuntimeServiceClient;
use crate::cri::{
    ListPodSandboxRequest, NetworkConfig, PodSandbox, PodSandboxConfig, PodSandboxFilter,
    PodSandboxState, PodSandboxStateValue, PodSandboxStatusRequest, PodSandboxStatusResponse,
    RemovePodSandboxRequest, RunPodSandboxRequest, RuntimeConfig, StopPodSandboxRequest,
    UpdateRuntimeConfigRequest,
};

pub type Runtime = RuntimeServiceClient<Channel>;

/// RunPodSandbox with the default runtime handler; returns the pod id.
pub async fn run(c: &mut Runtime, config: &PodSandboxConfig) -> Result<String, Status> {
    let req = RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    };
    Ok(c.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id)
}

pub async fn stop(c: &mut Runtime, id: &str) -> Result<(), Status> {
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await?;
    Ok(())
}

pub async fn remove(c: &mut Runtime, id: &str) -> Result<(), Status> {
    c.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await?;
    Ok(())
}

pub async fn status(
    c: &mut Runtime,
    id: &str,
    verbose: bool,
) -> Result<PodSandboxStatusResponse, Status> {
    Ok(c.pod_sandbox_status(PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose,
    })
    .await?
    .into_inner())
}

/// The parsed `info["info"]` JSON of a verbose PodSandboxStatus.
pub async fn info(c: &mut Runtime, id: &str) -> Result<Value> {
    let resp = status(c, id, true)
        .await
        .with_context(|| format!("PodSandboxStatus {id}"))?;
    let text = resp.info.get("info").with_context(|| {
        format!(
            "verbose status of {id} has no \"info\" key: {:?}",
            resp.info
        )
    })?;
    serde_json::from_str(text).with_context(|| format!("verbose info of {id}: {text}"))
}

/// The pod's IPv4 address from PodSandboxStatus.
pub async fn ip(c: &mut Runtime, id: &str) -> Result<Ipv4Addr> {
    let st = status(c, id, false)
        .await
        .with_context(|| format!("PodSandboxStatus {id}"))?;
    let ip = st
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .unwrap_or_default();
    ip.parse()
        .with_context(|| format!("pod {id} has no IPv4 address (status network.ip = {ip:?})"))
}

/// The pod's CRI state (`SandboxReady`/`SandboxNotready`).
pub async fn state(c: &mut Runtime, id: &str) -> Result<PodSandboxState> {
    let st = status(c, id, false)
        .await
        .with_context(|| format!("PodSandboxStatus {id}"))?;
    let s = st.status.context("status missing")?.state;
    PodSandboxState::try_from(s).with_context(|| format!("state {s}"))
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub id: String,
    pub state: Option<PodSandboxState>,
    pub labels: Vec<(String, String)>,
}

pub async fn list(c: &mut Runtime, filter: Option<Filter>) -> Result<Vec<PodSandbox>, Status> {
    let filter = filter.map(|f| PodSandboxFilter {
        id: f.id,
        state: f.state.map(|s| PodSandboxStateValue { state: s as i32 }),
        label_selector: f.labels.into_iter().collect::<HashMap<_, _>>(),
    });
    Ok(c.list_pod_sandbox(ListPodSandboxRequest { filter })
        .await?
        .into_inner()
        .items)
}

/// UpdateRuntimeConfig with a pod CIDR, as the kubelet sends it at startup.
pub async fn set_pod_cidr(c: &mut Runtime, cidr: &str) -> Result<(), Status> {
    c.update_runtime_config(UpdateRuntimeConfigRequest {
        runtime_config: Some(RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: cidr.into(),
            }),
        }),
    })
    .await?;
    Ok(())
}

/// Stops and removes every pod; returns how many there were.
pub async fn remove_all(c: &mut Runtime) -> Result<usize> {
    let pods = list(c, None).await.context("ListPodSandbox")?;
    for p in &pods {
        stop(c, &p.id)
            .await
            .with_context(|| format!("StopPodSandbox {}", p.id))?;
        remove(c, &p.id)
            .await
            .with_context(|| format!("RemovePodSandbox {}", p.id))?;
    }
    Ok(pods.len())
}

/// Runs a pod expecting a failure; returns the status.
pub async fn run_err(c: &mut Runtime, config: &PodSandboxConfig) -> Result<Status> {
    match run(c, config).await {
        Ok(id) => bail!("RunPodSandbox succeeded ({id}) but should have failed"),
        Err(s) => Ok(s),
    }
}
