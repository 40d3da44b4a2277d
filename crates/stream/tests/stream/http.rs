//! Tokens and handshakes: what a wrong, reused or expired URL, or an unknown protocol, gets.

use std::time::Duration;

use crate::common::*;

fn spdy_head(path: &str, protocol: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn tokens_are_single_use() {
    let rig = rig().await;
    let url = rig.exec(&["emit", "0"], false, false);
    assert!(url.starts_with(&format!("http://{}/exec/", rig.server.local_addr())));
    let (mut ws, _) = crate::ws::connect(&url, "v4.channel.k8s.io").await;
    let _ = crate::ws::collect(&mut ws, false).await;
    let (code, body) = raw_request(
        addr_of(&url),
        &spdy_head(&path_of(&url), "v4.channel.k8s.io"),
    )
    .await;
    assert_eq!(code, 404);
    assert!(body.contains("already used"), "{body}");
}

#[tokio::test]
async fn wrong_tokens_and_paths_are_404() {
    let rig = rig().await;
    let addr = rig.server.local_addr();
    let (code, body) =
        raw_request(addr, &spdy_head("/exec/not-a-token", "v4.channel.k8s.io")).await;
    assert_eq!(code, 404);
    assert!(body.contains("not found"), "{body}");
    let (code, _) = raw_request(addr, &spdy_head("/other/x", "v4.channel.k8s.io")).await;
    assert_eq!(code, 404);
    // A port-forward token on the exec path.
    let url = rig.portforward();
    let token = path_of(&url).rsplit('/').next().expect("token").to_string();
    let (code, body) = raw_request(
        addr,
        &spdy_head(&format!("/exec/{token}"), "v4.channel.k8s.io"),
    )
    .await;
    assert_eq!(code, 404);
    assert!(body.contains("issued for portforward"), "{body}");
}

#[tokio::test]
async fn expired_tokens_are_404() {
    let rig = rig_with(0, None).await;
    let url = rig.exec(&["emit", "0"], false, false);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (code, body) = raw_request(
        addr_of(&url),
        &spdy_head(&path_of(&url), "v4.channel.k8s.io"),
    )
    .await;
    assert_eq!(code, 404);
    assert!(body.contains("expired"), "{body}");
}

#[tokio::test]
async fn handshake_refusals() {
    let rig = rig().await;
    // No common SPDY protocol: 403 and the list the server accepts.
    let url = rig.exec(&["emit", "0"], false, false);
    let mut tcp = tokio::net::TcpStream::connect(addr_of(&url))
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(spdy_head(&path_of(&url), "v9.channel.k8s.io").as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(text.starts_with("http/1.1 403"), "{text}");
    assert!(
        text.contains("x-accepted-stream-protocol-versions: v4.channel.k8s.io"),
        "{text}"
    );
    // No upgrade at all.
    let url = rig.exec(&["emit", "0"], false, false);
    let (code, body) = raw_request(
        addr_of(&url),
        &format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path_of(&url)),
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("X-Stream-Protocol-Version"), "{body}");
    // WebSocket port-forward without ports.
    let url = rig.portforward();
    let (code, body) = raw_request(
        addr_of(&url),
        &format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n",
            path_of(&url)
        ),
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("\"port\" is required"), "{body}");
}

#[tokio::test]
async fn shutdown_refuses_new_requests() {
    let rig = rig().await;
    rig.server.shutdown().await;
    use berth_core::stream::{StreamRequest, StreamService};
    let err = rig
        .server
        .register(StreamRequest::PortForward {
            pod_id: "p".into(),
            netns: None,
        })
        .expect_err("shut down");
    assert!(err.to_string().contains("shut down"), "{err}");
}
