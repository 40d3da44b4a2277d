//! One forwarded connection: a client data stream joined to a TCP connection in the pod's
//! network namespace, both directions copied with half-close kept (the client's end of
//! data shuts down the socket's write side; the socket's EOF ends the data stream).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use berth_core::stream::PortForwarder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::remotecommand::{Reader, Writer};
use crate::ws::ChannelMux;

const BUF: usize = 64 * 1024;

#[derive(Clone)]
pub struct Target {
    pub pod_id: String,
    pub netns: Option<PathBuf>,
    pub forwarder: Arc<dyn PortForwarder>,
}

/// Which side of a copy failed: only the pod's side is reported to the client (a client
/// resetting its own data stream is how client-go ends a connection, not an error).
enum Failed {
    Client,
    Pod(io::Error),
}

async fn pump<R, W>(from: &mut R, to: &mut W, from_pod: bool) -> Result<(), Failed>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let side = |e: io::Error, pod: bool| if pod { Failed::Pod(e) } else { Failed::Client };
    let mut buf = vec![0u8; BUF];
    loop {
        let n = from.read(&mut buf).await.map_err(|e| side(e, from_pod))?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])
            .await
            .map_err(|e| side(e, !from_pod))?;
    }
    to.flush().await.map_err(|e| side(e, !from_pod))?;
    to.shutdown().await.map_err(|e| side(e, !from_pod))
}

/// Forwards one connection to `port`; errors go to `error` as text, like the kubelet's.
/// `end_on_pod_eof`: finish once the pod's side has ended (for protocols where the client
/// cannot half-close), instead of waiting for both directions.
pub async fn forward(
    target: &Target,
    port: u16,
    mut data_rd: Reader,
    mut data_wr: Writer,
    mut error: Writer,
    end_on_pod_eof: bool,
) {
    let report = |e: &dyn std::fmt::Display| {
        format!(
            "error forwarding port {port} to pod {}, uid : {e}",
            target.pod_id
        )
    };
    let conn = match target.forwarder.connect(target.netns.clone(), port).await {
        Ok(c) => c,
        Err(e) => {
            let msg = report(&e);
            tracing::debug!("port-forward: {msg}");
            let _ = error.write_all(msg.as_bytes()).await;
            let _ = error.shutdown().await;
            let _ = data_wr.shutdown().await;
            return;
        }
    };
    let tcp = match conn
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(conn))
    {
        Ok(t) => t,
        Err(e) => {
            let _ = error.write_all(report(&e).as_bytes()).await;
            let _ = error.shutdown().await;
            return;
        }
    };
    let (mut tcp_rd, mut tcp_wr) = tcp.into_split();
    let up = pump(&mut data_rd, &mut tcp_wr, false);
    let down = pump(&mut tcp_rd, &mut data_wr, true);
    let (up_res, down_res) = if end_on_pod_eof {
        tokio::pin!(up, down);
        tokio::select! {
            d = &mut down => (Ok(()), d),
            u = &mut up => (u, down.await),
        }
    } else {
        tokio::join!(up, down)
    };
    for res in [up_res, down_res] {
        if let Err(Failed::Pod(e)) = res {
            let msg = report(&e);
            tracing::debug!("port-forward: {msg}");
            let _ = error.write_all(msg.as_bytes()).await;
            break;
        }
    }
    let _ = error.shutdown().await;
}

/// The channel flavour of WebSocket port-forward: port i on channels 2i (data) and
/// 2i+1 (error), each opened by the port number (2 bytes, little endian). The connection
/// closes once every port's forward has ended.
pub async fn serve_ws_channels(
    mut mux: ChannelMux,
    ports: Vec<u16>,
    target: Target,
    close_signals: bool,
) {
    let mut forwards = tokio::task::JoinSet::new();
    for (i, port) in ports.into_iter().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let port_bytes = bytes::Bytes::copy_from_slice(&port.to_le_bytes());
        mux.send(data_ch, port_bytes.clone()).await;
        mux.send(err_ch, port_bytes).await;
        let Some(rd) = mux.reader(data_ch) else {
            continue;
        };
        let (wr, err) = (mux.writer(data_ch), mux.writer(err_ch));
        let target = target.clone();
        forwards.spawn(async move {
            // Without v5 close signals the client cannot end its side: the pod's EOF ends
            // the forward.
            forward(
                &target,
                port,
                Box::new(rd),
                Box::new(wr),
                Box::new(err),
                !close_signals,
            )
            .await;
        });
    }
    let gone = mux.gone();
    tokio::select! {
        _ = async { while forwards.join_next().await.is_some() {} } => mux.close().await,
        _ = gone.cancelled() => {}
    }
}
