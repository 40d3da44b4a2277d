//! Against Go: bytes written by Go's SPDY framer, decoded and served.

use super::peer::*;
use super::*;
use crate::frame::{GOAWAY_OK, RST_CANCEL};
use crate::go_fixture::GO_FRAMES;
use http::HeaderValue;

#[tokio::test]
async fn decodes_frames_written_by_go() {
    let mut r = &GO_FRAMES[..];
    let mut dec = HeaderDecompressor::new();
    let mut frames = Vec::new();
    while let Some(f) = read_frame(&mut r, &mut dec, 1 << 20).await.expect("frame") {
        frames.push(f);
    }
    let mut error = HeaderMap::new();
    error.insert("streamtype", HeaderValue::from_static("error"));
    let mut stdout = HeaderMap::new();
    stdout.insert("streamtype", HeaderValue::from_static("stdout"));
    let want = vec![
        Frame::SynStream {
            id: 1,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: error,
        },
        Frame::Data {
            id: 1,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
        Frame::SynStream {
            id: 3,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: stdout,
        },
        Frame::Data {
            id: 3,
            flags: 0,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Ping(1),
        Frame::SynReply {
            id: 2,
            flags: 0,
            headers: HeaderMap::new(),
        },
        Frame::RstStream {
            id: 3,
            status: RST_CANCEL,
        },
        Frame::GoAway {
            last_good: 0,
            status: GOAWAY_OK,
        },
    ];
    assert_eq!(frames, want);
}

#[tokio::test]
async fn our_non_header_frames_match_go_byte_for_byte() {
    // Go's bytes for DATA(1, FIN), PING(1), RST_STREAM(3, CANCEL), GOAWAY(0, OK).
    let mut comp = HeaderCompressor::new().expect("compressor");
    let mut out = BytesMut::new();
    for f in [
        Frame::Data {
            id: 1,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
        Frame::Ping(1),
        Frame::RstStream {
            id: 3,
            status: RST_CANCEL,
        },
        Frame::GoAway {
            last_good: 0,
            status: GOAWAY_OK,
        },
    ] {
        frame::encode(&f, &mut comp, &mut out).expect("encode");
    }
    let go = [
        &GO_FRAMES[49..57],
        &GO_FRAMES[103..115],
        &GO_FRAMES[137..153],
        &GO_FRAMES[153..169],
    ]
    .concat();
    assert_eq!(&out[..], &go[..]);
}

#[tokio::test]
async fn serves_a_go_client() {
    let (_s, mut acc, mut peer) = server_with_raw_peer(Config::default());
    peer.io.write_all(&GO_FRAMES[..115]).await.expect("write"); // up to and with the PING
    let mut error = tokio::time::timeout(LIMIT, acc.accept())
        .await
        .expect("accept")
        .expect("stream");
    assert_eq!(error.id(), 1);
    assert_eq!(error.headers().get("streamtype").expect("type"), "error");
    let mut stdout = acc.accept().await.expect("stream");
    assert_eq!(stdout.headers().get("streamtype").expect("type"), "stdout");
    let mut got = Vec::new();
    error.read_to_end(&mut got).await.expect("read");
    assert!(got.is_empty());
    let mut hello = [0u8; 5];
    stdout.read_exact(&mut hello).await.expect("read");
    assert_eq!(&hello, b"hello");
    // Replies in order, then the PING echo.
    let replies: Vec<Frame> = vec![
        peer.recv().await.expect("f"),
        peer.recv().await.expect("f"),
        peer.recv().await.expect("f"),
    ];
    assert!(
        matches!(replies[0], Frame::SynReply { id: 1, flags: 0, ref headers } if headers.is_empty())
    );
    assert!(matches!(
        replies[1],
        Frame::SynReply {
            id: 3,
            flags: 0,
            ..
        }
    ));
    assert_eq!(replies[2], Frame::Ping(1));
    // The rest of Go's bytes: a stray SYN_REPLY, RST of stream 3, GOAWAY.
    peer.io.write_all(&GO_FRAMES[115..]).await.expect("write");
    let mut b = [0u8; 1];
    let err = stdout.read(&mut b).await.expect_err("reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    error
        .write_all(b"{}")
        .await
        .expect("error stream still writable");
    drop(error); // the peer finished it, so the drop sends our FIN
    assert_eq!(
        peer.recv_skipping_updates().await,
        Some(Frame::Data {
            id: 1,
            flags: 0,
            data: Bytes::from_static(b"{}")
        })
    );
    assert_eq!(
        peer.recv_skipping_updates().await,
        Some(Frame::Data {
            id: 1,
            flags: FLAG_FIN,
            data: Bytes::new()
        })
    );
}
