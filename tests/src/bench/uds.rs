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
