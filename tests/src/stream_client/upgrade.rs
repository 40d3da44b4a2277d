//! Opening the connection a streaming URL points at: the HTTP/1.1 `Upgrade: SPDY/3.1`
//! exchange (client-go `transport/spdy` + apimachinery `httpstream/spdy` round tripper) and the
//! WebSocket handshake.

use anyhow::{Context, Result, bail};
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The parts of an `http://host:port/path?query` streaming URL.
pub struct Target {
    pub authority: String,
    pub path_and_query: String,
}

pub fn parse_url(url: &str) -> Result<Target> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("bad streaming URL {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("streaming URL {url:?}: only http:// is supported by this test client");
    }
    let authority = uri
        .authority()
        .with_context(|| format!("streaming URL {url:?} has no host"))?
        .to_string();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        authority,
        path_and_query,
    })
}

/// A TCP stream with bytes already read past the HTTP response head in front.
pub struct Upgraded {
    pending: Vec<u8>,
    tcp: TcpStream,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let n = buf.remaining().min(self.pending.len());
            buf.put_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// POSTs the upgrade request offering `protocols` (one `X-Stream-Protocol-Version` header
/// each, in preference order) and returns the connection and the protocol the server chose
/// (empty if it named none).
pub async fn spdy_upgrade(url: &str, protocols: &[&str]) -> Result<(Upgraded, String)> {
    let target = parse_url(url)?;
    let mut tcp = TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("connecting to {}", target.authority))?;
    tcp.set_nodelay(true)?;
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n",
        target.path_and_query, target.authority
    );
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await?;

    let mut buf = Vec::with_capacity(1024);
    let (status, reason, chosen, head_len) = loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!(
                "{url}: connection closed before the upgrade response ({} bytes read)",
                buf.len()
            );
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 64 << 10 {
            bail!("{url}: upgrade response head larger than 64 KiB");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp
            .parse(&buf)
            .with_context(|| format!("{url}: malformed upgrade response"))?
        {
            let chosen = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("x-stream-protocol-version"))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                .unwrap_or_default();
            break (
                resp.code.unwrap_or(0),
                resp.reason.unwrap_or("").to_string(),
                chosen,
                len,
            );
        }
    };
    if status != 101 {
        // Error responses carry a short text body; read what is there.
        let mut body = buf[head_len..].to_vec();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = tcp.read(&mut chunk).await {
                if n == 0 || body.len() > 64 << 10 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        bail!(
            "{url}: upgrade refused: {status} {reason}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    let pending = buf[head_len..].to_vec();
    Ok((Upgraded { pending, tcp }, chosen))
}

pub type Ws = WebSocketStream<TcpStream>;

/// WebSocket handshake offering `protocols`; returns the socket and the chosen subprotocol.
pub async fn websocket(url: &str, protocols: &[&str]) -> Result<(Ws, String)> {
    let target = parse_url(url)?;
    let ws_url = format!("ws://{}{}", target.authority, target.path_and_query);
    let mut req = ws_url
        .as_str()
        .into_client_request()
        .with_context(|| format!("bad WebSocket URL {ws_url}"))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&protocols.join(", "))?,
    );
    let tcp = TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("connecting to {}", target.authority))?;
    tcp.set_nodelay(true)?;
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .with_context(|| format!("{url}: WebSocket handshake"))?;
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((ws, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        let t = parse_url("http://127.0.0.1:1234/exec/abc?x=1").expect("url");
        assert_eq!(t.authority, "127.0.0.1:1234");
        assert_eq!(t.path_and_query, "/exec/abc?x=1");
        assert!(parse_url("https://h/x").is_err());
    }

    #[tokio::test]
    async fn upgrade_request_and_leftover_bytes() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut req = Vec::new();
            let mut chunk = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.expect("read");
                req.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\nEXTRA")
                .await
                .expect("write");
            String::from_utf8(req).expect("utf8")
        });
        let (mut up, chosen) = spdy_upgrade(&format!("http://{addr}/exec/tok"), &EXEC)
            .await
            .expect("upgrade");
        assert_eq!(chosen, "v4.channel.k8s.io");
        let mut extra = [0u8; 5];
        up.read_exact(&mut extra).await.expect("extra");
        assert_eq!(&extra, b"EXTRA");
        let req = server.await.expect("server");
        assert!(req.starts_with("POST /exec/tok HTTP/1.1\r\n"));
        assert!(req.contains("Upgrade: SPDY/3.1\r\n"));
        assert!(req.contains("X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"));
        assert!(req.contains("X-Stream-Protocol-Version: channel.k8s.io\r\n"));
    }

    const EXEC: [&str; 5] = super::super::protocol::EXEC_PROTOCOLS;
}
