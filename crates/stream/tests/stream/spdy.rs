//! exec and port-forward over SPDY/3.1 (crictl's default transport), and port-forward
//! over the KEP-4006 WebSocket tunnel (crictl's `--transport websocket`).

use std::time::Duration;

use berth_spdy::{Config, Session, Stream};
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// Upgrades like client-go's SPDY round tripper; answers the session and the protocol.
async fn upgrade(url: &str, protocols: &str) -> (Session, String) {
    let mut tcp = TcpStream::connect(addr_of(url)).await.expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: {protocols}\r\nContent-Length: 0\r\n\r\n",
        path_of(url)
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    // Byte by byte: nothing past the head may be taken from the SPDY session.
    let mut resp = Vec::new();
    while !resp.ends_with(b"\r\n\r\n") {
        resp.push(tcp.read_u8().await.expect("response"));
    }
    let text = String::from_utf8(resp).expect("utf8").to_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: spdy/3.1"), "{text}");
    let proto = text
        .lines()
        .find_map(|l| l.strip_prefix("x-stream-protocol-version: "))
        .expect("protocol")
        .trim()
        .to_string();
    (berth_spdy::client(tcp, Config::default()), proto)
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().expect("value"));
    }
    h
}

async fn open(s: &Session, kind: &str) -> Stream {
    s.open(headers(&[("streamtype", kind.to_string())]), false)
        .await
        .expect("open")
}

async fn read_all(s: &mut Stream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    out
}

#[tokio::test]
async fn exec_v4_over_spdy() {
    let rig = rig().await;
    let url = rig.exec(&["cat", "3"], true, false);
    let (session, proto) = upgrade(
        &url,
        "v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io",
    )
    .await;
    assert_eq!(proto, "v4.channel.k8s.io");
    let mut error = open(&session, "error").await;
    let mut stdin = open(&session, "stdin").await;
    let mut stdout = open(&session, "stdout").await;
    let mut stderr = open(&session, "stderr").await;
    stdin.write_all(b"ping\n").await.expect("stdin");
    stdin.shutdown().await.expect("stdin FIN");
    assert_eq!(read_all(&mut stdout).await, b"ping\n");
    assert_eq!(read_all(&mut stderr).await, b"bye\n");
    let st: serde_json::Value = serde_json::from_slice(&read_all(&mut error).await).expect("json");
    assert_eq!(st["reason"], "NonZeroExitCode");
    assert_eq!(st["details"]["causes"][0]["message"], "3");
    rig.wait_dropped(1).await;
}

#[tokio::test]
async fn exec_tty_resize_over_spdy() {
    let rig = rig().await;
    let url = rig.exec(&["resize", "0"], true, true);
    let (session, _) = upgrade(&url, "v4.channel.k8s.io").await;
    let mut error = open(&session, "error").await;
    let _stdin = open(&session, "stdin").await;
    let mut stdout = open(&session, "stdout").await;
    let mut resize = open(&session, "resize").await;
    resize
        .write_all(b"{\"Width\":120,\"Height\":40}\n")
        .await
        .expect("resize");
    assert_eq!(read_all(&mut stdout).await, b"120x40\n");
    let st: serde_json::Value = serde_json::from_slice(&read_all(&mut error).await).expect("json");
    assert_eq!(st["status"], "Success");
}

#[tokio::test]
async fn spdy_client_disconnect_drops_the_session() {
    let rig = rig().await;
    let url = rig.exec(&["hang"], true, false);
    let (session, _) = upgrade(&url, "v4.channel.k8s.io").await;
    let _streams = (
        open(&session, "error").await,
        open(&session, "stdin").await,
        open(&session, "stdout").await,
        open(&session, "stderr").await,
    );
    for _ in 0..200 {
        if rig.fake.started.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    session.close().await;
    rig.wait_dropped(1).await;
}

/// One forwarded connection as client-go makes it: error stream (closed at once), data
/// stream; `len` bytes through the echo server, half-closed, checked.
async fn forward_one(session: &Session, port: &str, id: u32, len: usize) -> (Vec<u8>, String) {
    let mut h = headers(&[
        ("streamtype", "error".into()),
        ("port", port.into()),
        ("requestid", id.to_string()),
    ]);
    let mut error = session.open(h.clone(), false).await.expect("error stream");
    error.shutdown().await.expect("close error");
    h.insert("streamtype", "data".parse().expect("value"));
    let data = session.open(h, false).await.expect("data stream");
    let (mut rd, mut wr) = tokio::io::split(data);
    let sent = payload(len);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&to_send).await;
        let _ = wr.shutdown().await;
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut back))
        .await
        .expect("in time")
        .expect("read");
    let _ = writer.await;
    if !back.is_empty() {
        assert_eq!(back.len(), sent.len());
        assert_eq!(sha(&back), sha(&sent));
    }
    let err = String::from_utf8(read_all(&mut error).await).expect("utf8");
    (back, err)
}

async fn portforward_checks(session: Session) {
    let port = echo_server().await.to_string();
    let (back, err) = forward_one(&session, &port, 0, 10 * 1024 * 1024).await;
    assert_eq!(back.len(), 10 * 1024 * 1024);
    assert_eq!(err, "");
    // Several at once on one connection.
    let mut all = Vec::new();
    for id in 1..4 {
        let (s, p) = (session.clone(), port.clone());
        all.push(tokio::spawn(async move {
            forward_one(&s, &p, id, 512 * 1024).await
        }));
    }
    for t in all {
        let (back, err) = t.await.expect("join");
        assert_eq!((back.len(), err.as_str()), (512 * 1024, ""));
    }
    let (_, err) = forward_one(&session, "1", 10, 0).await;
    assert!(err.contains("error forwarding port 1 to pod p1"), "{err}");
    let (_, err) = forward_one(&session, "http", 11, 0).await;
    assert!(err.contains("unable to parse \"http\" as a port"), "{err}");
    session.close().await;
}

#[tokio::test]
async fn portforward_over_spdy() {
    let rig = rig().await;
    let url = rig.portforward();
    let (session, proto) = upgrade(&url, "portforward.k8s.io").await;
    assert_eq!(proto, "portforward.k8s.io");
    portforward_checks(session).await;
}

/// A WebSocket carrying a byte stream in binary messages, as client-go's tunnel does.
fn bridge<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(ours);
        let up = async {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0
                    || sink
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                {
                    break;
                }
            }
            let _ = sink.close().await;
        };
        let down = async {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Binary(b) = m
                    && wr.write_all(&b).await.is_err()
                {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        tokio::join!(up, down);
    });
    theirs
}

#[tokio::test]
async fn portforward_over_websocket_tunnel() {
    let rig = rig().await;
    let url = rig.portforward();
    let (ws, chosen) = crate::ws::connect(&url, "SPDY/3.1+portforward.k8s.io").await;
    assert_eq!(chosen.as_deref(), Some("SPDY/3.1+portforward.k8s.io"));
    let session = berth_spdy::client(bridge(ws), Config::default());
    portforward_checks(session).await;
}
