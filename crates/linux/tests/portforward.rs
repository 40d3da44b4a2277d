//! NetnsPortForwarder for real: a listener on 127.0.0.1 inside a fresh network namespace
//! is reached through the namespace's pinned path; a closed port gives a clear error; the
//! host namespace (None) works too. Needs root (ip netns); skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use berth_core::stream::PortForwarder;
use berth_linux::portforward::NetnsPortForwarder;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}");
}

/// Deletes the namespace when the test ends, even on a failed assertion.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// A listener bound inside `ns` (a socket keeps the namespace it was made in).
fn listen_in(ns: &str) -> TcpListener {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .join()
    .unwrap()
}

fn echo_once(l: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        c.write_all(&buf).unwrap();
    })
}

async fn round_trip(netns: Option<PathBuf>, port: u16) {
    let fwd = NetnsPortForwarder::new();
    let mut s = fwd.connect(netns, port).await.expect("connect");
    s.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_inside_a_netns() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let name = format!("berth-test-pf-{}", std::process::id());
    ip(&["netns", "add", &name]);
    let ns = Netns(name.clone());
    ip(&["-n", &name, "link", "set", "lo", "up"]);
    let path = PathBuf::from(format!("/run/netns/{name}"));

    let l = listen_in(&name);
    let port = l.local_addr().unwrap().port();
    let server = echo_once(l);
    round_trip(Some(path.clone()), port).await;
    server.join().unwrap();

    // The port is closed now: refused, and the message says where.
    let err = NetnsPortForwarder::new()
        .connect(Some(path.clone()), port)
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "failed to connect to localhost:{port} inside namespace"
        )) && msg.contains(&name)
            && msg.contains("connection refused"),
        "{msg}"
    );
    // The caller's thread did not move: a host listener is not seen in the netns.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let hport = host.local_addr().unwrap().port();
    let r = NetnsPortForwarder::new().connect(Some(path), hport).await;
    assert!(r.is_err(), "host port reached from the pod netns");
    let server = echo_once(host);
    round_trip(None, hport).await;
    server.join().unwrap();

    let missing = NetnsPortForwarder::new()
        .connect(Some("/run/netns/berth-test-no-such".into()), 80)
        .await
        .expect_err("missing netns");
    assert!(
        missing.to_string().contains("berth-test-no-such"),
        "{missing}"
    );
    drop(ns);
    assert!(!std::path::Path::new(&format!("/run/netns/{name}")).exists());
}
