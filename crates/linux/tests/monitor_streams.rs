//! Streamed exec for real: busybox containers under the pod monitor, sessions read and
//! written like the streaming server does (on threads here), with berth's own runtime and
//! runc; nothing left behind: no process, no exec file, no console socket. Needs root;
//! skips otherwise (runc parts skip without /usr/bin/runc).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod streams;
#[path = "monitor_support.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use berth_core::runtime::{ContainerRuntime, ExecRequest, RuntimeError};
use streams::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_tty() {
    if !root() {
        return;
    }
    let env = Env::new("sexec");
    let rt = env.runtime();
    let pod = "pod-se";
    running(&env, &rt, pod, "se1", &["sleep", "1000"], false, false).await;

    // stdin piped to cat, echoed on stdout; closing stdin ends it.
    let mut s = rt
        .exec_stream(pod, &exec_req("se1", &["cat"], false, [true, true, false]))
        .await
        .expect("exec cat");
    assert!(s.stderr.is_none() && s.resize.is_none());
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    stdin.write_all(b"hello berth\n").unwrap();
    out.wait_for("hello berth\n").await;
    drop(stdin);
    assert_eq!(exit_of(s).await, 0);
    assert_eq!(out.finish().await, "hello berth\n");

    // Separate stdout and stderr, exit code.
    let script = "echo out; echo err >&2; exit 3";
    let mut s = rt
        .exec_stream(
            pod,
            &exec_req("se1", &["sh", "-c", script], false, [false, true, true]),
        )
        .await
        .expect("exec script");
    assert!(s.stdin.is_none());
    let out = Collector::new(s.stdout.take().unwrap());
    let err = Collector::new(s.stderr.take().unwrap());
    assert_eq!(exit_of(s).await, 3);
    assert_eq!(out.finish().await, "out\n");
    assert_eq!(err.finish().await, "err\n");

    // A program that does not exist: an error, not a session.
    let r = rt
        .exec_stream(
            pod,
            &exec_req("se1", &["/no/such"], false, [false, true, true]),
        )
        .await;
    assert!(r.is_err(), "missing program: {r:?}");
    // tty with stderr is refused; unknown container is NotFound.
    let r = rt
        .exec_stream(pod, &exec_req("se1", &["sh"], true, [true, true, true]))
        .await;
    assert!(matches!(r, Err(RuntimeError::InvalidArgument(_))), "{r:?}");
    let r = rt
        .exec_stream(pod, &exec_req("nope", &["sh"], false, [false, true, false]))
        .await;
    assert!(matches!(r, Err(RuntimeError::NotFound(_))), "{r:?}");

    let files = exec_files(&env, pod, "se1");
    assert!(files.is_empty(), "exec files left: {files:?}");
    finish(&env, &rt, pod, &["se1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_tty() {
    if !root() {
        return;
    }
    let env = Env::new("stty");
    let rt = env.runtime();
    let pod = "pod-st";
    running(&env, &rt, pod, "st1", &["sleep", "1000"], false, false).await;

    let mut s = rt
        .exec_stream(pod, &exec_req("st1", &["sh"], true, [true, true, false]))
        .await
        .expect("exec sh");
    assert!(s.stderr.is_none());
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    out.wait_for("# ").await;
    s.resize
        .as_ref()
        .unwrap()
        .resize(123, 45)
        .await
        .expect("resize");
    stdin
        .write_all(b"busybox stty size; [ -t 0 ] && echo is-a-tty\n")
        .unwrap();
    out.wait_for("45 123").await;
    out.wait_for("\nis-a-tty").await;
    // The pty is the container's own (its devpts), as with runc.
    check_own_terminal(&out, &mut stdin, false).await;
    s.resize
        .as_ref()
        .unwrap()
        .resize(81, 19)
        .await
        .expect("resize");
    stdin.write_all(b"busybox stty size\n").unwrap();
    out.wait_for("19 81").await;
    // The terminal is the shell's controlling one: ^C interrupts its foreground job.
    stdin.write_all(b"sleep 100\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stdin.write_all(b"\x03echo after-int\n").unwrap();
    out.wait_for("\nafter-int").await;
    stdin.write_all(b"exit 5\n").unwrap();
    assert_eq!(exit_of(s).await, 5);
    out.finish().await;
    drop(stdin);
    finish(&env, &rt, pod, &["st1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_exec_is_killed() {
    if !root() {
        return;
    }
    let env = Env::new("sdrop");
    let rt = env.runtime();
    let pod = "pod-sd";
    running(&env, &rt, pod, "sd1", &["sleep", "1000"], false, false).await;
    let before = cgroup_procs("sd1");
    assert_eq!(before.len(), 1, "{before:?}");
    let mpid = monitor_pid(&env.run_dir, pod);

    for tty in [false, true] {
        let s = rt
            .exec_stream(
                pod,
                &exec_req("sd1", &["sleep", "1000"], tty, [true, true, false]),
            )
            .await
            .expect("exec sleep");
        eventually("the exec in the cgroup", || cgroup_procs("sd1").len() == 2).await;
        drop(s);
        eventually("the exec killed", || cgroup_procs("sd1") == before).await;
        eventually("the exec reaped", || children(mpid) == (before.clone(), 0)).await;
        let files = exec_files(&env, pod, "sd1");
        assert!(files.is_empty(), "exec files left: {files:?}");
    }
    // The monitor keeps serving.
    let r = rt
        .exec_sync(
            pod,
            &ExecRequest {
                container_id: "sd1".into(),
                process: process(&["echo", "still here"], false),
                timeout: Some(WAIT),
                max_output: 1 << 20,
                drain: std::time::Duration::from_secs(2),
            },
        )
        .await
        .expect("exec_sync");
    assert_eq!(r.stdout, b"still here\n");
    let fds = std::fs::read_dir(format!("/proc/{mpid}/fd"))
        .unwrap()
        .count();
    assert!(fds < 16, "the monitor holds {fds} fds");
    finish(&env, &rt, pod, &["sd1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stream_with_runc() {
    const RUNC: &str = "/usr/bin/runc";
    if !root() || !std::path::Path::new(RUNC).exists() {
        return;
    }
    let env = Env::new("srunc");
    let rt = env
        .runtime()
        .with_oci_runtimes([("runc".to_string(), RUNC.into())].into());
    let pod = "pod-sr";
    let mut req = env.bundle(pod, "sr1", &["sleep", "1000"], false).await;
    req.handler = "runc".into();
    rt.create(&req).await.expect("create");
    rt.start(pod, "sr1").await.expect("start");
    let mut s = rt
        .exec_stream(
            pod,
            &exec_req(
                "sr1",
                &["sh", "-c", "read x; echo got $x; exit 6"],
                false,
                [true, true, false],
            ),
        )
        .await
        .expect("runc exec");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    stdin.write_all(b"it\n").unwrap();
    drop(stdin);
    assert_eq!(exit_of(s).await, 6);
    assert_eq!(out.finish().await, "got it\n");
    // A tty: runc makes the pty inside the container and berthd's session gets its master.
    let mut s = rt
        .exec_stream(pod, &exec_req("sr1", &["sh"], true, [true, true, false]))
        .await
        .expect("runc tty exec");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    s.resize
        .as_ref()
        .unwrap()
        .resize(66, 11)
        .await
        .expect("resize");
    check_own_terminal(&out, &mut stdin, false).await;
    stdin
        .write_all(b"busybox stty size; busybox tty; exit 8\n")
        .unwrap();
    assert_eq!(exit_of(s).await, 8);
    let text = out.finish().await;
    assert!(
        text.contains("11 66") && text.contains("/dev/pts/"),
        "{text:?}"
    );
    drop(stdin);
    let files = exec_files(&env, pod, "sr1");
    assert!(files.is_empty(), "exec files left: {files:?}");
    let consoles: Vec<_> = std::fs::read_dir(monitor_dir(&env.run_dir, pod))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        .map(|e| e.file_name())
        .collect();
    assert_eq!(consoles.len(), 1, "console sockets left: {consoles:?}");
    finish(&env, &rt, pod, &["sr1"]).await;
}
