//! Old Go gRPC clients send the socket path as HTTP/2 `:authority`, percent-encoded or raw.
//! This test speaks raw HTTP/2 to a real berthd with each form and checks that Version works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use berth_api::cri::{VersionRequest, VersionResponse};
use loona_hpack::{Decoder, Encoder};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sends one unary Version call with the given authority; returns grpc-status and the reply.
async fn version_with_authority(
    socket: &std::path::Path,
    authority: &str,
) -> (String, Option<VersionResponse>) {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let mut enc = Encoder::new();
    let block = enc.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/runtime.v1.RuntimeService/Version"),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]);
    let msg = VersionRequest {
        version: "v1".into(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
    out.extend(frame(0x0, 0x1, 1, &body)); // DATA, END_STREAM
    s.write_all(&out).await.unwrap();

    let mut dec = Decoder::new();
    let mut status = String::new();
    let mut data = Vec::new();
    let read = async {
        loop {
            let mut h = [0u8; 9];
            s.read_exact(&mut h).await.unwrap();
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let mut p = vec![0u8; len];
            s.read_exact(&mut p).await.unwrap();
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            match kind {
                0x4 if flags & 0x1 == 0 => s.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap(),
                0x1 if stream == 1 => {
                    for (n, v) in dec.decode(&p).unwrap() {
                        if n == b"grpc-status" {
                            status = String::from_utf8(v).unwrap();
                        }
                    }
                    if flags & 0x1 != 0 {
                        break;
                    }
                }
                0x0 if stream == 1 => {
                    data.extend_from_slice(&p);
                    if flags & 0x1 != 0 {
                        break;
                    }
                }
                0x3 if stream == 1 => {
                    panic!("stream reset by berthd (RST_STREAM) for authority {authority:?}")
                }
                0x7 => panic!("connection closed by berthd (GOAWAY) for authority {authority:?}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("reply in time");
    let reply = (data.len() > 5).then(|| VersionResponse::decode(&data[5..]).unwrap());
    (status, reply)
}

#[tokio::test]
async fn accepts_every_authority_form_go_clients_send() {
    let d = common::start("");
    let socket = d.socket();
    let encoded = socket.display().to_string().replace('/', "%2F");
    for authority in [
        "localhost".to_string(),
        encoded,
        socket.display().to_string(),
    ] {
        let (status, reply) = version_with_authority(&socket, &authority).await;
        assert_eq!(status, "0", "authority {authority:?}");
        assert_eq!(
            reply.unwrap().runtime_name,
            "berth",
            "authority {authority:?}"
        );
    }
}
