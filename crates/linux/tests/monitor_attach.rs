//! Attach for real: attachers joining busybox containers' stdio held by the pod monitor:
//! fan-out to several attachers, a slow one never blocking the container, stdin and
//! stdin_once, tty resize. Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod streams;
#[path = "monitor_support.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use berth_core::runtime::{ContainerRuntime, RuntimeError};
use streams::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_output_and_stdin_once() {
    if !root() {
        return;
    }
    let env = Env::new("attach");
    let rt = env.runtime();
    let pod = "pod-at";
    let ticker = "i=0; while true; do echo line$i; echo eline$i >&2; i=$((i+1)); sleep 0.1; done";
    running(&env, &rt, pod, "tick", &["sh", "-c", ticker], false, false).await;

    // Two attachers both see the output; one of them stderr too.
    let mut a = rt
        .attach(pod, &attach_req("tick", false, [false, true, true]))
        .await
        .expect("attach a");
    let mut b = rt
        .attach(pod, &attach_req("tick", false, [false, true, false]))
        .await
        .expect("attach b");
    assert!(b.stderr.is_none() && b.stdin.is_none() && b.resize.is_none());
    let (a_out, a_err) = (
        Collector::new(a.stdout.take().unwrap()),
        Collector::new(a.stderr.take().unwrap()),
    );
    let b_out = Collector::new(b.stdout.take().unwrap());
    a_out.wait_for("line").await;
    a_err.wait_for("eline").await;
    b_out.wait_for("line").await;
    assert!(!a_out.text().contains("eline"), "stderr on stdout");
    // A detached attacher does not disturb the other one.
    drop(a);
    let seen = b_out.text().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b_out.text().len() > seen, "b stopped receiving");
    // stdin is refused: the container was not created with it.
    let r = rt
        .attach(pod, &attach_req("tick", false, [true, true, false]))
        .await;
    assert!(
        matches!(&r, Err(RuntimeError::FailedPrecondition { message, .. }) if message.contains("stdin")),
        "{r:?}"
    );
    rt.kill(pod, "tick", libc::SIGKILL, false).await.unwrap();
    assert_eq!(exit_of(b).await, 137);
    b_out.finish().await;
    let r = rt
        .attach(pod, &attach_req("tick", false, [false, true, false]))
        .await;
    assert!(
        matches!(r, Err(RuntimeError::FailedPrecondition { .. })),
        "attach to exited: {r:?}"
    );

    // stdin + stdin_once: input echoed, closing it ends the container.
    running(&env, &rt, pod, "cat", &["cat"], false, true).await;
    let mut s = rt
        .attach(pod, &attach_req("cat", false, [true, true, true]))
        .await
        .expect("attach cat");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    stdin.write_all(b"ping\n").unwrap();
    out.wait_for("ping\n").await;
    drop(stdin);
    assert_eq!(exit_of(s).await, 0);
    assert_eq!(out.finish().await, "ping\n");
    let logged = log_records(&env.log_path("cat"));
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0].0.as_str(), logged[0].2.as_str()),
        ("stdout", "ping")
    );
    finish(&env, &rt, pod, &["tick", "cat"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_tty_resize() {
    if !root() {
        return;
    }
    let env = Env::new("attty");
    let rt = env.runtime();
    let pod = "pod-tt";
    let mut req = env.bundle(pod, "t", &["sh"], true).await;
    req.stdio.stdin = true;
    rt.create(&req).await.expect("create");
    rt.start(pod, "t").await.expect("start");
    let mut s = rt
        .attach(pod, &attach_req("t", true, [true, true, true]))
        .await
        .expect("attach");
    assert!(s.stderr.is_none(), "a tty has no stderr");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    s.resize
        .as_ref()
        .unwrap()
        .resize(77, 22)
        .await
        .expect("resize");
    stdin.write_all(b"busybox stty size\n").unwrap();
    out.wait_for("22 77").await;
    stdin.write_all(b"exit 4\n").unwrap();
    assert_eq!(exit_of(s).await, 4);
    out.finish().await;
    drop(stdin);
    let r = rt
        .attach(pod, &attach_req("t", true, [false, true, false]))
        .await;
    assert!(
        matches!(r, Err(RuntimeError::FailedPrecondition { .. })),
        "{r:?}"
    );
    finish(&env, &rt, pod, &["t"]).await;
}
