//! Client and server sessions of this crate talking over an in-memory duplex pipe.

use berth_spdy::{Acceptor, Config, Error, Session, Stream};
use http::{HeaderMap, HeaderValue};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const LIMIT: Duration = Duration::from_secs(20);

fn pair(cfg: Config) -> (Session, Session, Acceptor) {
    let (a, b) = tokio::io::duplex(256 << 10);
    let client = berth_spdy::client(a, cfg.clone());
    let (server, acceptor) = berth_spdy::server(b, cfg);
    (client, server, acceptor)
}

fn typed(kind: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("streamtype", HeaderValue::from_static(kind));
    h
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

#[tokio::test]
async fn open_accept_and_data_both_ways_with_half_close() {
    let (client, _server, mut acceptor) = pair(Config::default());
    let server_side = tokio::spawn(async move {
        let mut s = acceptor.accept().await.expect("stream");
        assert_eq!(s.id(), 1);
        assert_eq!(s.headers().get("streamtype").expect("header"), "stdin");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"ping from client");
        s.write_all(b"pong from server").await.expect("write");
        s.shutdown().await.expect("fin");
    });
    let mut c = within(client.open(typed("stdin"), false))
        .await
        .expect("open");
    c.write_all(b"ping from client").await.expect("write");
    c.shutdown().await.expect("fin");
    let mut got = Vec::new();
    within(c.read_to_end(&mut got)).await.expect("read");
    assert_eq!(got, b"pong from server");
    within(server_side).await.expect("server task");
    // Writing after our FIN is an error, not a silent drop.
    assert!(c.write_all(b"late").await.is_err());
}

#[tokio::test]
async fn half_closed_error_stream_like_kubernetes() {
    let (client, _server, mut acceptor) = pair(Config::default());
    let server_side = tokio::spawn(async move {
        let mut s = acceptor.accept().await.expect("stream");
        // The client sent FIN with SYN_STREAM: reading ends at once.
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert!(got.is_empty());
        s.write_all(br#"{"status":"Success"}"#)
            .await
            .expect("write");
        // Dropped without shutdown: the drop sends our FIN since the peer already finished.
    });
    let mut c = within(client.open(typed("error"), true))
        .await
        .expect("open");
    assert!(
        c.write_all(b"x").await.is_err(),
        "fin at open forbids writes"
    );
    let mut got = String::new();
    within(c.read_to_string(&mut got)).await.expect("read");
    assert_eq!(got, r#"{"status":"Success"}"#);
    within(server_side).await.expect("server task");
}

#[tokio::test]
async fn reset_reaches_the_peer() {
    let (client, _server, mut acceptor) = pair(Config::default());
    let mut c = within(client.open(typed("stdout"), false))
        .await
        .expect("open");
    let s = within(acceptor.accept()).await.expect("stream");
    s.reset();
    let mut buf = [0u8; 8];
    let err = within(c.read(&mut buf)).await.expect_err("reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let err = c.write_all(b"x").await.expect_err("write after reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn dropping_an_open_stream_resets_it() {
    let (client, _server, mut acceptor) = pair(Config::default());
    let mut c = within(client.open(typed("stdout"), false))
        .await
        .expect("open");
    drop(within(acceptor.accept()).await.expect("stream"));
    let mut buf = [0u8; 8];
    let err = within(c.read(&mut buf)).await.expect_err("reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn many_streams_interleave() {
    let (client, _server, mut acceptor) = pair(Config::default());
    let echo = tokio::spawn(async move {
        while let Some(mut s) = acceptor.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.expect("read");
                s.write_all(&buf).await.expect("write");
                s.shutdown().await.expect("fin");
            });
        }
    });
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = client.open(typed("data"), false).await.expect("open");
            let msg = format!("stream {i} ").repeat(1000 + i as usize);
            s.write_all(msg.as_bytes()).await.expect("write");
            s.shutdown().await.expect("fin");
            let mut back = String::new();
            s.read_to_string(&mut back).await.expect("read");
            assert_eq!(back, msg);
        }));
    }
    for t in tasks {
        within(t).await.expect("client task");
    }
    within(client.close()).await;
    within(echo).await.expect("acceptor ends after close");
}

async fn pump(mut s: Stream, total: usize) -> Stream {
    let chunk = vec![0xa5u8; 64 << 10];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        s.write_all(&chunk[..n]).await.expect("write");
        sent += n;
    }
    s.shutdown().await.expect("fin");
    s
}

async fn drain(s: &mut Stream) -> usize {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            return total;
        }
        assert!(buf[..n].iter().all(|b| *b == 0xa5));
        total += n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_each_way() {
    const TOTAL: usize = 100 << 20;
    let (client, _server, mut acceptor) = pair(Config::default());
    let server_side = tokio::spawn(async move {
        let s = acceptor.accept().await.expect("stream");
        let (mut r, w) = split(s);
        let writer = tokio::spawn(pump_half(w, TOTAL));
        let got = drain_half(&mut r).await;
        writer.await.expect("writer");
        got
    });
    let c = within(client.open(typed("data"), false))
        .await
        .expect("open");
    let (mut r, w) = split(c);
    let writer = tokio::spawn(pump_half(w, TOTAL));
    let got = tokio::time::timeout(Duration::from_secs(120), drain_half(&mut r))
        .await
        .expect("client read timed out");
    assert_eq!(got, TOTAL);
    writer.await.expect("writer");
    let server_got = within(server_side).await.expect("server");
    assert_eq!(server_got, TOTAL);
}

fn split(s: Stream) -> (tokio::io::ReadHalf<Stream>, tokio::io::WriteHalf<Stream>) {
    tokio::io::split(s)
}

async fn pump_half(mut w: tokio::io::WriteHalf<Stream>, total: usize) {
    let chunk = vec![0xa5u8; 64 << 10];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        w.write_all(&chunk[..n]).await.expect("write");
        sent += n;
    }
    w.shutdown().await.expect("fin");
}

async fn drain_half(r: &mut tokio::io::ReadHalf<Stream>) -> usize {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

#[tokio::test]
async fn slow_reader_applies_backpressure() {
    let cfg = Config {
        stream_buffer: 64 << 10,
        write_buffer: 64 << 10,
        ..Config::default()
    };
    let (client, _server, mut acceptor) = pair(cfg);
    let c = within(client.open(typed("data"), false))
        .await
        .expect("open");
    let mut s = within(acceptor.accept()).await.expect("stream");
    // Nobody reads: the writer must stall long before 64 MiB (bounded buffers + the pipe).
    let writer = tokio::spawn(pump(c, 64 << 20));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !writer.is_finished(),
        "64 MiB went into buffers with no reader"
    );
    // Once the reader reads, everything arrives.
    let got = tokio::time::timeout(Duration::from_secs(60), drain(&mut s))
        .await
        .expect("drain timed out");
    assert_eq!(got, 64 << 20);
    within(writer).await.expect("writer");
}

#[tokio::test]
async fn close_sends_goaway_and_ends_both_sides() {
    let (client, server, mut acceptor) = pair(Config::default());
    let mut c = within(client.open(typed("stdout"), false))
        .await
        .expect("open");
    let mut s = within(acceptor.accept()).await.expect("stream");
    within(server.close()).await;
    within(client.closed()).await;
    assert!(within(acceptor.accept()).await.is_none());
    let mut buf = [0u8; 4];
    assert!(within(c.read(&mut buf)).await.is_err());
    assert!(within(s.read(&mut buf)).await.is_err());
    assert!(matches!(
        client.open(typed("stdout"), false).await,
        Err(Error::SessionClosed | Error::GoneAway)
    ));
}

#[tokio::test]
async fn vanished_peer_ends_the_session_without_hanging() {
    let (a, b): (DuplexStream, DuplexStream) = tokio::io::duplex(64 << 10);
    let (server, mut acceptor) = berth_spdy::server(b, Config::default());
    let client = berth_spdy::client(a, Config::default());
    let mut c = within(client.open(typed("stdin"), false))
        .await
        .expect("open");
    c.write_all(b"partial").await.expect("write");
    let mut s = within(acceptor.accept()).await.expect("stream");
    let mut buf = [0u8; 7];
    within(s.read_exact(&mut buf)).await.expect("read");
    // The client's side disappears abruptly: its driver task drops the connection.
    within(client.close()).await;
    drop(c);
    let err = within(s.read(&mut buf)).await.expect_err("no FIN was sent");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    within(server.closed()).await;
    assert!(within(acceptor.accept()).await.is_none());
    assert!(s.write_all(b"x").await.is_err());
}

#[tokio::test]
async fn refused_when_the_acceptor_is_gone() {
    let (client, _server, acceptor) = pair(Config::default());
    drop(acceptor);
    match within(client.open(typed("stdout"), false)).await {
        Err(Error::Reset { id: 1, status: 3 }) => {}
        Err(e) => panic!("want REFUSED_STREAM, got {e}"),
        Ok(_) => panic!("want REFUSED_STREAM, got a stream"),
    }
}

#[test]
fn handles_and_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (client, server, mut acceptor) = pair(Config::default());
        send(&client.close());
        send(&client.closed());
        send(&client.open(HeaderMap::new(), false));
        send(&acceptor.accept());
        drop(server);
    });
}

#[tokio::test]
async fn zero_buffers_still_move_data() {
    let cfg = Config {
        stream_buffer: 0,
        write_buffer: 0,
        ..Config::default()
    };
    let (client, _server, mut acceptor) = pair(cfg);
    let c = within(client.open(typed("data"), false))
        .await
        .expect("open");
    let mut s = within(acceptor.accept()).await.expect("stream");
    let writer = tokio::spawn(pump(c, 1 << 20));
    assert_eq!(within(drain(&mut s)).await, 1 << 20);
    within(writer).await.expect("writer");
}
