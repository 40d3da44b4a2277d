//! The client against a small kubelet-like server on loopback (berth-spdy server side,
//! tungstenite server side), so every transport is exercised before berthd serves them.

use super::protocol::*;
use super::ws_io::WsIo;
use super::*;
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue as WsHeaderValue;

mod port_forward;

const LIMIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// Accepts one connection, answers the SPDY upgrade choosing `choose` from the offered
/// protocols (checking it was offered), and returns the server session.
async fn spdy_server(
    l: TcpListener,
    choose: &'static str,
) -> (berth_spdy::Session, berth_spdy::Acceptor) {
    let (mut tcp, _) = l.accept().await.expect("accept");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(n > 0, "client closed during the request");
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).expect("request");
    assert_eq!(req.method, Some("POST"));
    let offered: Vec<String> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-stream-protocol-version"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect();
    assert!(
        offered.iter().any(|p| p == choose),
        "{choose} not offered: {offered:?}"
    );
    let upgrade = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .expect("Upgrade header");
    assert_eq!(upgrade.value, b"SPDY/3.1");
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {choose}\r\n\r\n"
    );
    tcp.write_all(resp.as_bytes()).await.expect("respond");
    berth_spdy::server(tcp, berth_spdy::Config::default())
}

// tungstenite fixes the callback's error type (an HTTP response), large as it is.
#[allow(clippy::result_large_err)]
async fn ws_server(l: TcpListener, choose: &'static str) -> (super::upgrade::Ws, String) {
    let (tcp, _): (TcpStream, _) = l.accept().await.expect("accept");
    let mut uri = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
        uri = req.uri().to_string();
        let offered = req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            offered.split(", ").any(|p| p == choose),
            "{choose} not in {offered}"
        );
        resp.headers_mut()
            .insert("Sec-WebSocket-Protocol", WsHeaderValue::from_static(choose));
        Ok(resp)
    })
    .await
    .expect("ws accept");
    (ws, uri)
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/exec/token", l.local_addr().expect("addr"));
    (l, url)
}

fn kind(s: &berth_spdy::Stream) -> String {
    s.headers()
        .get(STREAM_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

const EXIT_3: &[u8] = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;

#[tokio::test]
async fn exec_over_spdy() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (session, mut acc) = spdy_server(l, "v4.channel.k8s.io").await;
        let mut streams = Vec::new();
        for _ in 0..4 {
            streams.push(acc.accept().await.expect("stream"));
        }
        let order: Vec<String> = streams.iter().map(kind).collect();
        assert_eq!(order, ["error", "stdin", "stdout", "stderr"]);
        let mut it = streams.into_iter();
        let (mut error, mut stdin, mut stdout, mut stderr) = (
            it.next().expect("e"),
            it.next().expect("i"),
            it.next().expect("o"),
            it.next().expect("r"),
        );
        let mut input = Vec::new();
        stdin.read_to_end(&mut input).await.expect("stdin");
        stdout
            .write_all(&input.to_ascii_uppercase())
            .await
            .expect("stdout");
        stdout.shutdown().await.expect("fin");
        stderr.write_all(b"warning\n").await.expect("stderr");
        stderr.shutdown().await.expect("fin");
        error.write_all(EXIT_3).await.expect("status");
        // Like the kubelet: reset every stream, then close the connection.
        for s in [error, stdin, stdout, stderr] {
            s.reset();
        }
        session.close().await;
    });
    let opts = ExecOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let res = within(exec(&url, Transport::Spdy, opts, Some(&b"hello\n"[..])))
        .await
        .expect("exec");
    assert_eq!(res.stdout, b"HELLO\n");
    assert_eq!(res.stderr, b"warning\n");
    assert_eq!(res.exit_code, 3);
    within(server).await.expect("server");
}

#[tokio::test]
async fn tty_exec_over_spdy_sends_resizes() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (_session, mut acc) = spdy_server(l, "v4.channel.k8s.io").await;
        let mut kinds = Vec::new();
        let mut stdout = None;
        let mut resize = None;
        let mut error = None;
        for _ in 0..3 {
            let s = acc.accept().await.expect("stream");
            kinds.push(kind(&s));
            match kind(&s).as_str() {
                "stdout" => stdout = Some(s),
                "resize" => resize = Some(s),
                _ => error = Some(s),
            }
        }
        assert_eq!(
            kinds,
            ["error", "stdout", "resize"],
            "tty: no stderr stream"
        );
        let (mut stdout, mut resize, mut error) = (
            stdout.expect("stdout"),
            resize.expect("resize"),
            error.expect("error"),
        );
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            resize.read_exact(&mut b).await.expect("resize");
            line.push(b[0]);
        }
        stdout.write_all(&line).await.expect("stdout");
        stdout.shutdown().await.expect("fin");
        error
            .write_all(br#"{"status":"Success"}"#)
            .await
            .expect("status");
        error.shutdown().await.expect("fin");
    });
    let opts = ExecOptions {
        stdin: false,
        stdout: true,
        stderr: true,
        tty: true,
    };
    let mut run = within(exec_interactive(&url, Transport::Spdy, opts))
        .await
        .expect("start");
    assert!(run.stderr.is_none());
    run.resize
        .as_ref()
        .expect("resize")
        .send(TerminalSize {
            width: 100,
            height: 30,
        })
        .await
        .expect("send");
    let mut out = String::new();
    within(run.stdout.take().expect("stdout").read_to_string(&mut out))
        .await
        .expect("read");
    assert_eq!(out, "{\"Width\":100,\"Height\":30}\n");
    assert_eq!(within(run.wait()).await.expect("wait"), 0);
    within(server).await.expect("server");
}

#[tokio::test]
async fn exec_over_websocket_v5() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = ws_server(l, "v5.channel.k8s.io").await;
        let mut input = Vec::new();
        loop {
            match ws.next().await.expect("message").expect("ok") {
                Message::Binary(b) if b[..] == [CH_CLOSE, CH_STDIN] => break,
                Message::Binary(b) => {
                    assert_eq!(b[0], CH_STDIN);
                    input.extend_from_slice(&b[1..]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let send = |ch: u8, d: &[u8]| Message::Binary(channel_message(ch, d).into());
        ws.send(send(CH_STDOUT, &input.to_ascii_uppercase()))
            .await
            .expect("out");
        ws.send(send(CH_STDERR, b"warning\n")).await.expect("err");
        ws.send(send(CH_ERROR, EXIT_3)).await.expect("status");
        ws.close(None).await.expect("close");
    });
    let opts = ExecOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let res = within(exec(&url, Transport::WebSocket, opts, Some(&b"abc"[..])))
        .await
        .expect("exec");
    assert_eq!(
        res,
        ExecResult {
            stdout: b"ABC".to_vec(),
            stderr: b"warning\n".to_vec(),
            exit_code: 3
        }
    );
    within(server).await.expect("server");
}

#[tokio::test]
async fn tty_exec_over_websocket_sends_resizes_and_closes_stdin() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (mut ws, _) = ws_server(l, "v5.channel.k8s.io").await;
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match ws.next().await.expect("message").expect("ok") {
                Message::Binary(b) => seen.push(b.to_vec()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            seen[0],
            channel_message(CH_RESIZE, b"{\"Width\":7,\"Height\":5}\n")
        );
        assert_eq!(seen[1], channel_message(CH_STDIN, b"ls\n"));
        assert_eq!(seen[2], vec![CH_CLOSE, CH_STDIN]);
        ws.send(Message::Binary(
            channel_message(CH_STDOUT, b"done\r\n").into(),
        ))
        .await
        .expect("out");
        ws.close(None).await.expect("close");
    });
    let opts = ExecOptions {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let mut run = within(exec_interactive(&url, Transport::WebSocket, opts))
        .await
        .expect("start");
    assert_eq!(run.protocol, "v5.channel.k8s.io");
    let resize = run.resize.take().expect("resize");
    resize
        .send(TerminalSize {
            width: 7,
            height: 5,
        })
        .await
        .expect("resize");
    // Let the resize go out first so the order is deterministic.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut stdin = run.stdin.take().expect("stdin");
    stdin.write_all(b"ls\n").await.expect("stdin");
    stdin.shutdown().await.expect("close stdin");
    let mut out = Vec::new();
    within(run.stdout.take().expect("stdout").read_to_end(&mut out))
        .await
        .expect("read");
    assert_eq!(out, b"done\r\n");
    drop(resize);
    assert_eq!(within(run.wait()).await.expect("wait"), 0);
    within(server).await.expect("server");
}
