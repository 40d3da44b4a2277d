//! gRPC channels over a unix socket, for any CRI endpoint (berthd or containerd).

use std::path::Path;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects a gRPC channel to the unix socket at `path`.
pub async fn connect(path: &Path) -> Result<Channel> {
    let sock = path.to_path_buf();
    Endpoint::try_from("http://cri.sock")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(sock).await?)) }
        }))
        .await
        .with_context(|| format!("connect to {path:?}"))
}

/// True when an HTTP server on the unix socket at `path` answers `GET /_ping` with 200 (a
/// Docker API daemon is up).
pub fn ping_http(path: &Path) -> bool {
    use std::io::{Read, Write};
    let attempt = || -> std::io::Result<bool> {
        let mut s = std::os::unix::net::UnixStream::connect(path)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.ends_with(b"200"))
    };
    attempt().unwrap_or(false)
}
