//! exec/attach and port-forward over WebSocket, as client-go's executors speak them.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::*;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(url: &str, protocol: &str) -> (Ws, Option<String>) {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.into_client_request().expect("request");
    if !protocol.is_empty() {
        req.headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().expect("header"));
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connect");
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().expect("ascii").to_string());
    (ws, chosen)
}

/// Reads until the server closes: bytes per channel, and whether the close was normal.
pub async fn collect<S>(ws: &mut WebSocketStream<S>, base64: bool) -> (HashMap<u8, Vec<u8>>, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut out: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut normal = false;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match msg.expect("message") {
            Message::Binary(b) if !base64 => {
                out.entry(b[0]).or_default().extend_from_slice(&b[1..]);
            }
            Message::Text(t) if base64 => {
                let b = t.as_bytes();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&b[1..])
                    .expect("base64");
                out.entry(b[0] - b'0').or_default().extend_from_slice(&data);
            }
            Message::Close(f) => {
                normal = f.is_some_and(|f| u16::from(f.code) == 1000);
                break;
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    (out, normal)
}

fn status(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("status json")
}

#[tokio::test]
async fn exec_v4_reports_output_and_exit_code() {
    let rig = rig().await;
    let url = rig.exec(&["emit", "7"], false, false);
    let (mut ws, chosen) = connect(&url, "v4.channel.k8s.io").await;
    assert_eq!(chosen.as_deref(), Some("v4.channel.k8s.io"));
    let (got, normal) = collect(&mut ws, false).await;
    assert!(normal, "normal closure");
    assert_eq!(got[&1], b"out\n");
    assert_eq!(got[&2], b"err\n");
    let st = status(&got[&3]);
    assert_eq!(st["status"], "Failure");
    assert_eq!(st["reason"], "NonZeroExitCode");
    assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(st["details"]["causes"][0]["message"], "7");
    assert_eq!(
        st["message"],
        "command terminated with non-zero exit code: error executing command [emit 7], exit code 7"
    );
    rig.wait_dropped(1).await;
}

#[tokio::test]
async fn exec_v5_closes_stdin_with_the_close_signal() {
    let rig = rig().await;
    let url = rig.exec(&["cat", "0"], true, false);
    // crictl's websocket executor asks for v5 only.
    let (mut ws, chosen) = connect(&url, "v5.channel.k8s.io").await;
    assert_eq!(chosen.as_deref(), Some("v5.channel.k8s.io"));
    ws.send(Message::Binary(b"\x00hello ".to_vec().into()))
        .await
        .expect("send");
    ws.send(Message::Binary(b"\x00world\n".to_vec().into()))
        .await
        .expect("send");
    ws.send(Message::Binary(vec![255, 0].into()))
        .await
        .expect("close stdin");
    let (got, normal) = collect(&mut ws, false).await;
    assert!(normal);
    assert_eq!(got[&1], b"hello world\n");
    assert_eq!(got[&2], b"bye\n");
    assert_eq!(status(&got[&3])["status"], "Success");
}

#[tokio::test]
async fn exec_base64_variant() {
    let rig = rig().await;
    let url = rig.exec(&["emit", "0"], false, false);
    let (mut ws, chosen) = connect(&url, "v4.base64.channel.k8s.io").await;
    assert_eq!(chosen.as_deref(), Some("v4.base64.channel.k8s.io"));
    let (got, normal) = collect(&mut ws, true).await;
    assert!(normal);
    assert_eq!(got[&1], b"out\n");
    assert_eq!(got[&2], b"err\n");
    assert_eq!(status(&got[&3])["status"], "Success");
}

#[tokio::test]
async fn exec_tty_delivers_resizes() {
    let rig = rig().await;
    let url = rig.exec(&["resize", "0"], true, true);
    let (mut ws, _) = connect(&url, "v5.channel.k8s.io").await;
    ws.send(Message::Binary(
        b"\x04{\"Width\":100,\"Height\":30}".to_vec().into(),
    ))
    .await
    .expect("resize");
    let (got, _) = collect(&mut ws, false).await;
    assert_eq!(got[&1], b"100x30\n");
    assert!(!got.contains_key(&2), "no stderr with a tty");
    assert_eq!(rig.fake.sizes.lock().expect("lock")[0], (100, 30));
}

#[tokio::test]
async fn exec_failure_is_a_status() {
    let rig = rig().await;
    let url = rig.exec(&["fail"], false, false);
    let (mut ws, _) = connect(&url, "v4.channel.k8s.io").await;
    let (got, _) = collect(&mut ws, false).await;
    let st = status(&got[&3]);
    assert_eq!(st["status"], "Failure");
    let msg = st["message"].as_str().expect("message");
    assert!(msg.contains("container c-missing not found"), "{msg}");
    // channel.k8s.io (pre-v4): the error as text.
    let url = rig.exec(&["fail"], false, false);
    let (mut ws, _) = connect(&url, "channel.k8s.io").await;
    let (got, _) = collect(&mut ws, false).await;
    let text = String::from_utf8(got[&3].clone()).expect("utf8");
    assert!(text.contains("not found"), "{text}");
}

#[tokio::test]
async fn client_disconnect_drops_the_session() {
    let rig = rig().await;
    let url = rig.exec(&["hang"], true, false);
    let (mut ws, _) = connect(&url, "v5.channel.k8s.io").await;
    // The kubelet's first (empty) stdout message says the session is up.
    let first = ws.next().await.expect("message").expect("ok");
    assert_eq!(first, Message::Binary(vec![1].into()));
    for _ in 0..100 {
        if rig.fake.started.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(ws);
    rig.wait_dropped(1).await;
}

async fn portforward_channels(protocol: &str, half_close: bool) {
    let rig = rig().await;
    let port = echo_server().await;
    let url = format!("{}?port={port}", rig.portforward());
    let (mut ws, chosen) = connect(&url, protocol).await;
    assert_eq!(chosen.as_deref(), Some(protocol));
    let le = port.to_le_bytes();
    for ch in [0u8, 1] {
        let m = ws.next().await.expect("message").expect("ok");
        assert_eq!(m, Message::Binary(vec![ch, le[0], le[1]].into()));
    }
    let data = payload(10 * 1024 * 1024);
    let (mut tx, mut rx) = ws.split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(60 * 1024) {
            let mut m = vec![0u8];
            m.extend_from_slice(chunk);
            tx.send(Message::Binary(m.into())).await.expect("send");
        }
        if half_close {
            tx.send(Message::Binary(vec![255, 0].into()))
                .await
                .expect("close");
        }
        tx
    });
    let mut back = Vec::new();
    let mut closed = false;
    while back.len() < data.len() || half_close {
        match tokio::time::timeout(Duration::from_secs(20), rx.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b[0], 0, "data channel");
                back.extend_from_slice(&b[1..]);
            }
            Some(Ok(Message::Close(_))) | None => {
                closed = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(back.len(), data.len());
    assert_eq!(sha(&back), sha(&data));
    // With v5 the client's close reaches the pod as EOF; the echo server then ends the
    // connection and the server closes the WebSocket.
    assert_eq!(closed, half_close);
    let _ = writer.await;
}

#[tokio::test]
async fn portforward_v4_channels_10mb() {
    portforward_channels("v4.channel.k8s.io", false).await;
}

#[tokio::test]
async fn portforward_v5_channels_half_close() {
    portforward_channels("v5.channel.k8s.io", true).await;
}

#[tokio::test]
async fn exit_waits_for_output_only_for_the_drain_timeout() {
    let rig = rig().await;
    let url = rig.exec(&["bg", "0"], false, false);
    let started = std::time::Instant::now();
    let (mut ws, _) = connect(&url, "v4.channel.k8s.io").await;
    let (got, normal) = collect(&mut ws, false).await;
    assert!(normal);
    assert_eq!(got[&1], b"out\n");
    assert_eq!(status(&got[&3])["status"], "Success");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}
