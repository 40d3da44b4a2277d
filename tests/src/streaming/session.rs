//! The CRI side of a streaming session (the Exec/PortForward RPCs that hand out a URL) and
//! the resource counts the streaming tests compare before and after a session.

use std::path::Path;

use tonic::Status;

use crate::cri::{ExecRequest, PortForwardRequest};
use crate::pods::rpc::Runtime;
use crate::stream_client::ExecOptions;

/// The Exec RPC: the URL of a session running `cmd` in container `id` with `opts`' streams.
pub async fn exec_url(
    c: &mut Runtime,
    id: &str,
    cmd: &[&str],
    opts: ExecOptions,
) -> Result<String, Status> {
    let req = ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: opts.tty,
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    Ok(c.exec(req).await?.into_inner().url)
}

/// The PortForward RPC: the URL of a port-forward session into pod `pod_id`.
pub async fn port_forward_url(c: &mut Runtime, pod_id: &str) -> Result<String, Status> {
    let req = PortForwardRequest {
        pod_sandbox_id: pod_id.into(),
        port: Vec::new(),
    };
    Ok(c.port_forward(req).await?.into_inner().url)
}

/// How many descriptors process `pid` has open (`None`: it is gone).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The pid of pod `pod_id`'s monitor under berthd's run dir.
pub fn monitor_pid(run_dir: &Path, pod_id: &str) -> Option<u32> {
    let p = run_dir
        .join("pods")
        .join(pod_id)
        .join("monitor")
        .join("monitor.pid");
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}
