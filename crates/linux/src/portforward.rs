//! [`PortForwarder`]: TCP connections to `localhost:<port>` inside a pod's network
//! namespace. A socket stays in the namespace it was created in, so a short-lived thread
//! enters the namespace (setns), connects and ends; the connected stream is then used from
//! anywhere. Never a tokio worker: its namespace would change for every task after.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::runtime::RuntimeError;
use berth_core::stream::PortForwarder;
use nix::sched::{CloneFlags, setns};

/// Bound on one connect (localhost answers at once unless a filter drops packets).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct NetnsPortForwarder;

impl NetnsPortForwarder {
    pub fn new() -> Self {
        NetnsPortForwarder
    }
}

#[async_trait]
impl PortForwarder for NetnsPortForwarder {
    async fn connect(&self, netns: Option<PathBuf>, port: u16) -> Result<TcpStream, RuntimeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("berth-portforward".into())
            .spawn(move || {
                let _ = tx.send(connect_in(netns.as_ref(), port));
            })
            .map_err(|e| RuntimeError::failed("port forward", format!("spawning a thread: {e}")))?;
        rx.await
            .map_err(|_| RuntimeError::failed("port forward", "the connecting thread died"))?
    }
}

/// Runs on a thread of its own, which it may move into `netns`.
fn connect_in(netns: Option<&PathBuf>, port: u16) -> Result<TcpStream, RuntimeError> {
    let step = "port forward";
    let place = match netns {
        Some(p) => format!("inside namespace {}", p.display()),
        None => "in the host network namespace".to_string(),
    };
    if let Some(path) = netns {
        let f = File::open(path).map_err(|e| {
            RuntimeError::failed(
                step,
                format!("opening network namespace {}: {e}", path.display()),
            )
        })?;
        setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| {
            RuntimeError::failed(
                step,
                format!("entering network namespace {}: {e}", path.display()),
            )
        })?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let e4 = match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let e6 = match TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let msg = if e4.kind() == e6.kind() {
        format!(
            "failed to connect to localhost:{port} {place}: {}",
            short(&e4)
        )
    } else {
        format!(
            "failed to connect to localhost:{port} {place}: IPv4: {}; IPv6: {}",
            short(&e4),
            short(&e6)
        )
    };
    Err(RuntimeError::failed(step, msg))
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn short(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}
