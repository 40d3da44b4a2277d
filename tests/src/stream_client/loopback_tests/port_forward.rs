//! Port-forward over SPDY, WebSocket and the KEP-4006 tunnel against the loopback server.

use super::*;

/// Serves port-forward pairs on a SPDY session: checks the headers, echoes the data stream.
async fn serve_port_forward(mut acc: berth_spdy::Acceptor, port: u16, pairs: usize) {
    for want_id in 0..pairs {
        let mut error = acc.accept().await.expect("error stream");
        let data = acc.accept().await.expect("data stream");
        for (s, k) in [(&error, "error"), (&data, "data")] {
            let h: &HeaderMap = s.headers();
            assert_eq!(h.get(STREAM_TYPE).expect("type"), k);
            assert_eq!(h.get(PORT_HEADER).expect("port"), &port.to_string()[..]);
            assert_eq!(
                h.get(REQUEST_ID_HEADER).expect("id"),
                &want_id.to_string()[..]
            );
        }
        tokio::spawn(async move {
            let mut nothing = Vec::new();
            error
                .read_to_end(&mut nothing)
                .await
                .expect("client half-closed it");
            let (mut r, mut w) = tokio::io::split(data);
            tokio::io::copy(&mut r, &mut w).await.expect("echo");
            w.shutdown().await.expect("fin");
            drop(error); // FIN: no error to report
        });
    }
}

async fn echo_round_trip(conn: &mut PortForwardConn, msg: &[u8]) {
    conn.write_all(msg).await.expect("write");
    conn.shutdown().await.expect("fin");
    let mut back = Vec::new();
    within(conn.read_to_end(&mut back)).await.expect("read");
    assert_eq!(back, msg);
}

#[tokio::test]
async fn port_forward_over_spdy_two_connections_one_session() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (_s, acc) = spdy_server(l, PORT_FORWARD_PROTOCOL).await;
        serve_port_forward(acc, 8080, 2).await;
    });
    let pf = within(PortForwarder::connect(&url, PortForwardTransport::Spdy))
        .await
        .expect("connect");
    let mut a = within(pf.open(8080)).await.expect("open a");
    let mut b = within(pf.open(8080)).await.expect("open b");
    echo_round_trip(&mut a, b"first connection").await;
    echo_round_trip(&mut b, &vec![7u8; 1 << 20]).await;
    assert_eq!(within(a.error_message()).await.expect("error"), None);
    within(server).await.expect("server");
    pf.close().await;
}

#[tokio::test]
async fn port_forward_over_the_websocket_spdy_tunnel() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (ws, _) = ws_server(l, PORT_FORWARD_TUNNEL_PROTOCOL).await;
        let (_s, acc) = berth_spdy::server(WsIo::new(ws), berth_spdy::Config::default());
        serve_port_forward(acc, 5432, 1).await;
        _s.closed().await;
    });
    let mut conn = within(port_forward(
        &url,
        PortForwardTransport::SpdyOverWebSocket,
        5432,
    ))
    .await
    .expect("tunnel");
    echo_round_trip(&mut conn, &vec![1u8; 300 << 10]).await;
    drop(conn);
    within(server)
        .await
        .expect("server ends when the client goes");
}

#[tokio::test]
async fn port_forward_over_websocket_channels() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (mut ws, uri) = ws_server(l, PORT_FORWARD_WS_PROTOCOL).await;
        assert!(uri.ends_with("?port=80"), "{uri}");
        let port = 80u16.to_le_bytes();
        for ch in [0u8, 1] {
            ws.send(Message::Binary(channel_message(ch, &port).into()))
                .await
                .expect("port prefix");
        }
        let m = ws.next().await.expect("message").expect("ok");
        let Message::Binary(b) = m else {
            panic!("unexpected {m:?}")
        };
        assert_eq!(b[0], 0);
        ws.send(Message::Binary(channel_message(0, &b[1..]).into()))
            .await
            .expect("echo");
        ws.send(Message::Binary(channel_message(1, b"oops").into()))
            .await
            .expect("error");
        ws.close(None).await.expect("close");
    });
    let mut conn = within(port_forward(&url, PortForwardTransport::WebSocket, 80))
        .await
        .expect("connect");
    conn.write_all(b"GET /").await.expect("write");
    let mut back = Vec::new();
    within(conn.read_to_end(&mut back)).await.expect("read");
    assert_eq!(back, b"GET /");
    assert_eq!(
        within(conn.error_message()).await.expect("error"),
        Some("oops".to_string())
    );
    within(server).await.expect("server");
}
