//! The pump over socket pairs standing in for a session's descriptors.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use berth_core::stream::StdioSession;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::*;

#[test]
fn detach_keys() {
    assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
    assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
    assert!(parse_detach_keys("ctrl-pp").is_err());
    assert!(parse_detach_keys("").is_err());
}

/// A session whose ends are socket pairs: (session, stdin far end, stdout far end,
/// stderr far end, exit sender).
fn session() -> (
    StdioSession,
    UnixStream,
    UnixStream,
    UnixStream,
    oneshot::Sender<i32>,
) {
    let (i_ours, i_far) = UnixStream::pair().unwrap();
    let (o_ours, o_far) = UnixStream::pair().unwrap();
    let (e_ours, e_far) = UnixStream::pair().unwrap();
    let (tx, rx) = oneshot::channel();
    let s = StdioSession {
        stdin: Some(OwnedFd::from(i_ours)),
        stdout: Some(OwnedFd::from(o_ours)),
        stderr: Some(OwnedFd::from(e_ours)),
        resize: None,
        exit: Box::pin(async move { Ok(rx.await.unwrap_or(-1)) }),
    };
    (s, i_far, o_far, e_far, tx)
}

fn recorder() -> (OnEnd, Arc<Mutex<Vec<Option<i32>>>>) {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let e = ends.clone();
    (Box::new(move |c| e.lock().unwrap().push(c)), ends)
}

#[tokio::test]
async fn multiplexed_output_then_exit() {
    let (s, _i, mut o, mut e, tx) = session();
    let (client, ours) = tokio::io::duplex(1 << 16);
    let (on_end, ends) = recorder();
    let task = tokio::spawn(pump(ours, s, false, None, Vec::new(), false, on_end));
    o.write_all(b"out").unwrap();
    let mut client = client;
    let mut got = [0u8; 11];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x01\x00\x00\x00\x00\x00\x00\x03out");
    e.write_all(b"err").unwrap();
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x02\x00\x00\x00\x00\x00\x00\x03err");
    drop((o, e));
    tx.send(3).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    task.await.unwrap();
    assert_eq!(*ends.lock().unwrap(), vec![Some(3)]);
}

#[tokio::test]
async fn stdin_forwarded_until_the_detach_keys() {
    let (s, mut i, _o, _e, _tx) = session();
    let (mut client, ours) = tokio::io::duplex(1 << 16);
    let (on_end, ends) = recorder();
    let task = tokio::spawn(pump(
        ours,
        s,
        true,
        Some(DEFAULT_DETACH_KEYS.to_vec()),
        Vec::new(),
        false,
        on_end,
    ));
    // A lone ctrl-p is input after all; ctrl-p ctrl-q detaches.
    client.write_all(b"ab\x10x\x10\x10\x11zz").await.unwrap();
    task.await.unwrap();
    assert_eq!(*ends.lock().unwrap(), vec![None]);
    let mut got = Vec::new();
    i.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ab\x10x\x10");
}

#[tokio::test]
async fn without_upgrade_the_output_is_the_body() {
    let (mut s, _i, mut o, e, tx) = session();
    s.stderr = None;
    drop(e);
    let (on_end, _ends) = recorder();
    let resp = respond(
        None,
        s,
        true,
        None,
        vec![Bytes::from_static(b"old ")],
        on_end,
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/vnd.docker.raw-stream"
    );
    o.write_all(b"raw tty output").unwrap();
    drop(o);
    tx.send(0).unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"old raw tty output");
}
