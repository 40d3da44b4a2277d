//! A session of ours against a hand-driven peer speaking raw frames.

use super::*;
use crate::frame::{GOAWAY_OK, RST_CANCEL};
use peer::*;

mod go;
mod peer;

#[tokio::test]
async fn fin_and_unidirectional_syn_stream() {
    let (_s, mut acc, mut peer) = server_with_raw_peer(Config::default());
    peer.send(syn(1, FLAG_FIN | FLAG_UNIDIRECTIONAL, "error"))
        .await;
    let mut s = acc.accept().await.expect("stream");
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("EOF at once");
    assert!(
        s.write_all(b"x").await.is_err(),
        "unidirectional: we may not send"
    );
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynReply { id: 1, .. })
    ));
}

#[tokio::test]
async fn bad_stream_ids_are_reset_and_the_session_goes_on() {
    let (_s, mut acc, mut peer) = server_with_raw_peer(Config::default());
    peer.send(syn(2, 0, "stdout")).await; // even: a server id
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream {
            id: 2,
            status: RST_PROTOCOL_ERROR
        })
    );
    peer.send(syn(5, 0, "stdout")).await;
    peer.send(syn(3, 0, "stdout")).await; // not increasing
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynReply { id: 5, .. })
    ));
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream {
            id: 3,
            status: RST_PROTOCOL_ERROR
        })
    );
    assert_eq!(acc.accept().await.expect("stream").id(), 5);
}

#[tokio::test]
async fn malformed_frame_ends_the_session_with_goaway() {
    let (s, mut acc, mut peer) = server_with_raw_peer(Config::default());
    peer.send(syn(1, 0, "stdout")).await;
    let mut stream = acc.accept().await.expect("stream");
    // A PING whose length says 5.
    peer.io
        .write_all(&[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0])
        .await
        .expect("write");
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynReply { id: 1, .. })
    ));
    assert_eq!(
        peer.recv().await,
        Some(Frame::GoAway {
            last_good: 1,
            status: GOAWAY_PROTOCOL_ERROR
        })
    );
    assert_eq!(peer.recv().await, None, "connection closed after GOAWAY");
    tokio::time::timeout(LIMIT, s.closed())
        .await
        .expect("closed");
    let mut b = [0u8; 1];
    assert!(stream.read(&mut b).await.is_err());
    assert!(acc.accept().await.is_none());
}

#[tokio::test]
async fn garbage_header_block_ends_the_session() {
    let (s, _acc, mut peer) = server_with_raw_peer(Config::default());
    // SYN_STREAM whose header block is not zlib.
    let mut f = vec![0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    f.extend_from_slice(b"junk");
    peer.io.write_all(&f).await.expect("write");
    assert!(matches!(
        peer.recv().await,
        Some(Frame::GoAway {
            status: GOAWAY_PROTOCOL_ERROR,
            ..
        })
    ));
    tokio::time::timeout(LIMIT, s.closed())
        .await
        .expect("closed");
}

#[tokio::test]
async fn consumed_data_is_acknowledged_with_window_updates() {
    let (_s, mut acc, mut peer) = server_with_raw_peer(Config::default());
    peer.send(syn(1, 0, "stdin")).await;
    let mut s = acc.accept().await.expect("stream");
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynReply { id: 1, .. })
    ));
    for _ in 0..4 {
        peer.send(Frame::Data {
            id: 1,
            flags: 0,
            data: Bytes::from(vec![7u8; 16 << 10]),
        })
        .await;
    }
    let mut buf = vec![0u8; 64 << 10];
    s.read_exact(&mut buf).await.expect("read");
    let mut stream_acked = 0;
    let mut session_acked = 0;
    while stream_acked < (64 << 10) || session_acked < (64 << 10) {
        match peer.recv().await {
            Some(Frame::WindowUpdate { id: 1, delta }) => stream_acked += delta,
            Some(Frame::WindowUpdate { id: 0, delta }) => session_acked += delta,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn pings_are_sent_and_echoed() {
    let cfg = Config {
        ping_interval: Some(Duration::from_millis(20)),
        ..Config::default()
    };
    let (_s, _acc, mut peer) = server_with_raw_peer(cfg);
    assert_eq!(
        peer.recv().await,
        Some(Frame::Ping(2)),
        "server pings are even"
    );
    assert_eq!(peer.recv().await, Some(Frame::Ping(4)));
    peer.send(Frame::Ping(7)).await;
    loop {
        match peer.recv().await {
            Some(Frame::Ping(7)) => break,
            Some(Frame::Ping(id)) => assert_eq!(id % 2, 0),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn peer_vanishing_mid_frame_ends_everything() {
    let (s, mut acc, mut peer) = server_with_raw_peer(Config::default());
    peer.send(syn(1, 0, "stdin")).await;
    let mut stream = acc.accept().await.expect("stream");
    // Half a DATA frame, then the connection is gone.
    peer.io
        .write_all(&[0, 0, 0, 1, 0, 0, 0, 100, 1, 2, 3])
        .await
        .expect("write");
    drop(peer);
    let mut b = [0u8; 8];
    let err = tokio::time::timeout(LIMIT, stream.read(&mut b))
        .await
        .expect("read returned")
        .expect_err("no FIN");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    tokio::time::timeout(LIMIT, s.closed())
        .await
        .expect("closed");
    assert!(acc.accept().await.is_none());
    assert!(
        s.open(HeaderMap::new(), false).await.is_err(),
        "no opens on an ended session"
    );
}

#[tokio::test]
async fn goaway_from_peer_stops_new_opens_but_not_running_streams() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (client, _acc) = spawn(a, Config::default(), false);
    let mut peer = RawPeer::new(b);
    let open = tokio::spawn({
        let client = client.clone();
        async move { client.open(HeaderMap::new(), false).await }
    });
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynStream { id: 1, .. })
    ));
    peer.send(Frame::SynReply {
        id: 1,
        flags: 0,
        headers: HeaderMap::new(),
    })
    .await;
    let mut stream = open.await.expect("task").expect("open");
    peer.send(Frame::GoAway {
        last_good: 0,
        status: GOAWAY_OK,
    })
    .await;
    peer.send(Frame::Data {
        id: 1,
        flags: FLAG_FIN,
        data: Bytes::from_static(b"still here"),
    })
    .await;
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"still here");
    assert!(matches!(
        client.open(HeaderMap::new(), false).await,
        Err(Error::GoneAway)
    ));
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    let (s, acc, mut peer) = server_with_raw_peer(Config::default());
    peer.send(syn(1, 0, "stdout")).await;
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynReply { id: 1, .. })
    ));
    let mut acc = acc;
    let stream = acc.accept().await.expect("stream");
    let finished = s.shared.finished.subscribe();
    drop(s);
    drop(acc);
    // The stream still holds the session open.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!*finished.borrow());
    drop(stream); // RST (the peer had not finished), then GOAWAY, then EOF
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream {
            id: 1,
            status: RST_CANCEL
        })
    );
    assert_eq!(
        peer.recv().await,
        Some(Frame::GoAway {
            last_good: 1,
            status: GOAWAY_OK
        })
    );
    assert_eq!(peer.recv().await, None, "our FIN after the GOAWAY");
    // We linger, reading, until the peer closes too (no RST on unread input).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!*finished.borrow(), "still reading until the peer closes");
    drop(peer);
    let mut finished = finished;
    tokio::time::timeout(LIMIT, finished.wait_for(|f| *f))
        .await
        .expect("driver finished")
        .expect("watch");
}
