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

/// A tty container (berth's own runtime, or runc: its pty comes over a console socket)
/// with stdin: attached input reaches the shell, a resize applies, the exit is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_tty_resize() {
    const RUNC: &str = "/usr/bin/runc";
    if !root() {
        return;
    }
    let env = Env::new("attty");
    let rt = env
        .runtime()
        .with_oci_runtimes([("runc".to_string(), RUNC.into())].into());
    let pod = "pod-tt";
    let mut handlers = vec![("", "tberth")];
    if std::path::Path::new(RUNC).exists() {
        handlers.push(("runc", "trunc"));
    }
    for (handler, id) in &handlers {
        let mut req = env.bundle(pod, id, &["sh"], true).await;
        req.handler = handler.to_string();
        req.stdio.stdin = true;
        rt.create(&req).await.expect("create");
        rt.start(pod, id).await.expect("start");
        let mut s = rt
            .attach(pod, &attach_req(id, true, [true, true, true]))
            .await
            .expect("attach");
        assert!(s.stderr.is_none(), "a tty has no stderr");
        let out = Collector::new(s.stdout.take().unwrap());
        let mut stdin = blocking(s.stdin.take().unwrap());
        let resize = s.resize.as_ref().unwrap();
        resize.resize(77, 22).await.expect("resize");
        stdin.write_all(b"busybox stty size\n").unwrap();
        out.wait_for("22 77").await;
        // The container's own pty (its devpts), which is also its /dev/console.
        check_own_terminal(&out, &mut stdin, true).await;
        resize.resize(90, 30).await.expect("resize again");
        stdin.write_all(b"busybox stty size\n").unwrap();
        out.wait_for("30 90").await;
        stdin.write_all(b"exit 4\n").unwrap();
        assert_eq!(exit_of(s).await, 4, "{id}");
        out.finish().await;
        drop(stdin);
        let r = rt
            .attach(pod, &attach_req(id, true, [false, true, false]))
            .await;
        assert!(
            matches!(r, Err(RuntimeError::FailedPrecondition { .. })),
            "{r:?}"
        );
    }
    let ids: Vec<&str> = handlers.iter().map(|h| h.1).collect();
    finish(&env, &rt, pod, &ids).await;
}

/// An attacher that never reads neither blocks the container nor the other attacher: its
/// chunks are dropped (and the monitor's log says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_attacher_never_blocks() {
    if !root() {
        return;
    }
    let env = Env::new("atslow");
    let rt = env.runtime();
    let pod = "pod-as";
    let flood = "sleep 1; yes berth | head -c 3000000; echo; echo END; sleep 1000";
    running(&env, &rt, pod, "flood", &["sh", "-c", flood], false, false).await;
    let slow = rt
        .attach(pod, &attach_req("flood", false, [false, true, false]))
        .await
        .expect("attach slow");
    let mut fast = rt
        .attach(pod, &attach_req("flood", false, [false, true, false]))
        .await
        .expect("attach fast");
    let out = Collector::new(fast.stdout.take().unwrap());
    out.wait_for("\nEND\n").await;
    let log = env.log_path("flood");
    eventually("END in the CRI log", || {
        log_records(&log).last().is_some_and(|r| r.2 == "END")
    })
    .await;
    let mlog = monitor_dir(&env.run_dir, pod).join("monitor.log");
    let mlog = std::fs::read_to_string(mlog).unwrap();
    assert!(mlog.contains("reads too slowly"), "{mlog}");
    drop(slow);
    drop(fast);
    finish(&env, &rt, pod, &["flood"]).await;
}

/// Attach before start (as `docker run` does): nothing of the output is missed. With a tty
/// and stdin_once, closing stdin ends `cat` (the terminal's EOF). A container deleted
/// before it ran closes its attachers' sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_before_start_and_tty_stdin_once() {
    if !root() {
        return;
    }
    let env = Env::new("atearly");
    let rt = env.runtime();
    let pod = "pod-ae";
    let mut req = env
        .bundle(pod, "tcat", &["sh", "-c", "echo first; cat"], true)
        .await;
    req.stdio.stdin = true;
    req.stdio.stdin_once = true;
    rt.create(&req).await.expect("create");
    let mut s = rt
        .attach(pod, &attach_req("tcat", true, [true, true, false]))
        .await
        .expect("attach created");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    rt.start(pod, "tcat").await.expect("start");
    out.wait_for("first").await;
    stdin.write_all(b"hi\n").unwrap();
    out.wait_for("hi\r\nhi\r\n").await;
    drop(stdin);
    assert_eq!(exit_of(s).await, 0);
    assert!(out.finish().await.starts_with("first\r\n"));

    let req = env.bundle(pod, "never", &["echo", "never"], false).await;
    rt.create(&req).await.expect("create");
    let s = rt
        .attach(pod, &attach_req("never", false, [false, true, true]))
        .await
        .expect("attach created");
    rt.delete(pod, "never").await.expect("delete");
    let r = tokio::time::timeout(WAIT, s.exit).await.expect("ends");
    assert!(r.is_err(), "{r:?}");
    env.remove_bundle("never").await;
    finish(&env, &rt, pod, &["tcat"]).await;
}
