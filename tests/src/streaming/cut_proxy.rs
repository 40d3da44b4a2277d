//! A TCP forwarder whose connections can all be cut at once, so a test can make a streaming
//! client vanish mid-stream the way a crashed kubectl does: the sockets are closed (a reset
//! when data is still queued), not ended with a protocol-level close.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub struct CutProxy {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl CutProxy {
    /// Listens on 127.0.0.1:<free port> and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the proxy")?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            // Dropped with the accept task: aborting it closes every connection.
            let mut conns = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Self { addr, accept })
    }

    /// Closes every connection (and stops accepting) at once.
    pub async fn cut(self) {
        self.accept.abort();
        let _ = self.accept.await;
    }
}
