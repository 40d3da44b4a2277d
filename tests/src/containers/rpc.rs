//! Thin helpers over the CRI container RPCs, shared by tests and the containers bench.
//! Errors carry the RPC name and the gRPC status.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::cri::{
    Container, ContainerConfig, ContainerFilter, ContainerState, ContainerStateValue,
    ContainerStatus, ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest,
    ExecSyncRequest, ExecSyncResponse, LinuxContainerResources, ListContainersRequest,
    PodSandboxConfig, RemoveContainerRequest, ReopenContainerLogRequest, StartContainerRequest,
    StopContainerRequest, UpdateContainerResourcesRequest,
};
use crate::pods::rpc::Runtime;

fn rpc_err(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow!("{what}: {:?}: {}", s.code(), s.message())
}

/// CreateContainer; returns the container id.
pub async fn create(
    c: &mut Runtime,
    pod_id: &str,
    config: &ContainerConfig,
    pod_config: &PodSandboxConfig,
) -> Result<String, tonic::Status> {
    let req = CreateContainerRequest {
        pod_sandbox_id: pod_id.into(),
        config: Some(config.clone()),
        sandbox_config: Some(pod_config.clone()),
    };
    Ok(c.create_container(req).await?.into_inner().container_id)
}

pub async fn start(c: &mut Runtime, id: &str) -> Result<(), tonic::Status> {
    c.start_container(StartContainerRequest {
        container_id: id.into(),
    })
    .await?;
    Ok(())
}

/// StopContainer with a grace period in seconds (0: SIGKILL at once).
pub async fn stop(c: &mut Runtime, id: &str, timeout: i64) -> Result<(), tonic::Status> {
    c.stop_container(StopContainerRequest {
        container_id: id.into(),
        timeout,
    })
    .await?;
    Ok(())
}

pub async fn remove(c: &mut Runtime, id: &str) -> Result<(), tonic::Status> {
    c.remove_container(RemoveContainerRequest {
        container_id: id.into(),
    })
    .await?;
    Ok(())
}

pub async fn status_resp(
    c: &mut Runtime,
    id: &str,
    verbose: bool,
) -> Result<ContainerStatusResponse, tonic::Status> {
    Ok(c.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose,
    })
    .await?
    .into_inner())
}

/// ContainerStatus (non-verbose).
pub async fn status(c: &mut Runtime, id: &str) -> Result<ContainerStatus> {
    status_resp(c, id, false)
        .await
        .map_err(|s| rpc_err(&format!("ContainerStatus {id}"), s))?
        .status
        .with_context(|| format!("ContainerStatus {id}: no status"))
}

/// The parsed `info["info"]` of a verbose ContainerStatus ("pid", "bundle", "config"...).
pub async fn info(c: &mut Runtime, id: &str) -> Result<Value> {
    let resp = status_resp(c, id, true)
        .await
        .map_err(|s| rpc_err(&format!("ContainerStatus {id} (verbose)"), s))?;
    let text = resp
        .info
        .get("info")
        .with_context(|| format!("verbose status of {id} has no info: {:?}", resp.info))?;
    serde_json::from_str(text).with_context(|| format!("verbose info of {id}: {text}"))
}

/// The container's main pid (verbose info), when it runs.
pub async fn pid(c: &mut Runtime, id: &str) -> Result<i32> {
    let i = info(c, id).await?;
    i["pid"]
        .as_i64()
        .map(|p| p as i32)
        .with_context(|| format!("container {id} has no pid: {i}"))
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub id: String,
    pub pod_id: String,
    pub state: Option<ContainerState>,
    pub labels: Vec<(String, String)>,
}

pub async fn list(c: &mut Runtime, filter: Option<Filter>) -> Result<Vec<Container>> {
    let filter = filter.map(|f| ContainerFilter {
        id: f.id,
        pod_sandbox_id: f.pod_id,
        state: f.state.map(|s| ContainerStateValue { state: s as i32 }),
        label_selector: f.labels.into_iter().collect::<HashMap<_, _>>(),
    });
    Ok(c.list_containers(ListContainersRequest { filter })
        .await
        .map_err(|s| rpc_err("ListContainers", s))?
        .into_inner()
        .containers)
}

pub async fn exec_sync(
    c: &mut Runtime,
    id: &str,
    cmd: &[&str],
    timeout_secs: i64,
) -> Result<ExecSyncResponse, tonic::Status> {
    Ok(c.exec_sync(ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: timeout_secs,
    })
    .await?
    .into_inner())
}

/// ExecSync expecting exit 0; returns stdout.
pub async fn exec_ok(c: &mut Runtime, id: &str, cmd: &[&str]) -> Result<String> {
    let r = exec_sync(c, id, cmd, 30)
        .await
        .map_err(|s| rpc_err(&format!("ExecSync {cmd:?}"), s))?;
    if r.exit_code != 0 {
        bail!(
            "ExecSync {cmd:?} exited {}: stdout {:?} stderr {:?}",
            r.exit_code,
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&r.stdout).to_string())
}

pub async fn update(
    c: &mut Runtime,
    id: &str,
    linux: LinuxContainerResources,
) -> Result<(), tonic::Status> {
    c.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.into(),
        linux: Some(linux),
        ..Default::default()
    })
    .await?;
    Ok(())
}

pub async fn reopen_log(c: &mut Runtime, id: &str) -> Result<(), tonic::Status> {
    c.reopen_container_log(ReopenContainerLogRequest {
        container_id: id.into(),
    })
    .await?;
    Ok(())
}

/// Polls ContainerStatus until the container has exited; returns that status.
pub async fn wait_exited(c: &mut Runtime, id: &str, timeout: Duration) -> Result<ContainerStatus> {
    let until = Instant::now() + timeout;
    loop {
        let st = status(c, id).await?;
        if st.state == ContainerState::ContainerExited as i32 {
            return Ok(st);
        }
        if Instant::now() >= until {
            bail!(
                "container {id} has not exited after {timeout:?} (state {}, reason {:?})",
                st.state,
                st.reason
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes every container (stopping each at once); returns how many there were.
pub async fn remove_all(c: &mut Runtime) -> Result<usize> {
    let all = list(c, None).await?;
    for ctr in &all {
        stop(c, &ctr.id, 0)
            .await
            .map_err(|s| rpc_err(&format!("StopContainer {}", ctr.id), s))?;
        remove(c, &ctr.id)
            .await
            .map_err(|s| rpc_err(&format!("RemoveContainer {}", ctr.id), s))?;
    }
    Ok(all.len())
}
