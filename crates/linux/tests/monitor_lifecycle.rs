//! The pod monitor for real: busybox containers through berth's init, CRI logs, exit
//! records, exec, reattach after the client went away, reopen-log, RSS, cleanup.
//! Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "monitor_support.rs"]
mod support;

use std::time::{Duration, Instant};

use berth_core::runtime::{ContainerRuntime, ExecRequest, ProcessStatus};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exit_code() {
    if !root() {
        return;
    }
    let env = Env::new("logs");
    let rt = env.runtime();
    let script = "echo out1; echo err1 >&2; printf '%20000s\\n' x; echo out2; printf nonl; exit 3";
    let req = env
        .bundle("pod-a", "c1", &["sh", "-c", script], false)
        .await;
    let created = rt.create(&req).await.expect("create");
    assert_eq!(created.status, ProcessStatus::Created);
    let pid = created.pid.expect("pid");
    let mpid = monitor_pid(&env.run_dir, "pod-a");
    assert_ne!(
        parent_of(mpid),
        std::process::id() as i32,
        "monitor is our child"
    );
    assert_eq!(
        parent_of(pid),
        mpid,
        "the monitor is the container's parent"
    );

    let started = rt.start("pod-a", "c1").await.expect("start");
    assert!(started.started_at.is_some());
    let done = rt
        .wait("pod-a", "c1", Duration::from_secs(10))
        .await
        .expect("wait");
    assert_eq!(done.status, ProcessStatus::Exited);
    assert_eq!(done.exit_code, Some(3));
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap());
    assert!(!done.oom_killed);

    let exit = monitor_dir(&env.run_dir, "pod-a").join("containers/c1/exit.json");
    let exit: serde_json::Value = serde_json::from_slice(&std::fs::read(exit).unwrap()).unwrap();
    assert_eq!(exit["exit_code"], 3);

    // Output is logged before the exit is reported.
    let recs = log_records(&env.log_path("c1"));
    let out: Vec<(&str, usize)> = recs
        .iter()
        .filter(|r| r.0 == "stdout")
        .map(|r| (r.1.as_str(), r.2.len()))
        .collect();
    assert_eq!(
        out,
        vec![
            ("F", 4),
            ("P", 16384),
            ("F", 20000 - 16384),
            ("F", 4),
            ("P", 4)
        ],
        "{recs:?}"
    );
    let err: Vec<&(String, String, String)> = recs.iter().filter(|r| r.0 == "stderr").collect();
    assert_eq!(err.len(), 1);
    assert_eq!((err[0].1.as_str(), err[0].2.as_str()), ("F", "err1"));
    assert_eq!(recs.iter().find(|r| r.2 == "nonl").unwrap().1, "P");

    // Deleting twice is fine; the cgroup goes with it.
    rt.delete("pod-a", "c1").await.expect("delete");
    rt.delete("pod-a", "c1").await.expect("delete again");
    let st = rt.state("pod-a", "c1").await.expect("state");
    assert_eq!(st.status, ProcessStatus::Unknown);
    rt.release_pod("pod-a").await.expect("release");
    rt.release_pod("pod-a").await.expect("release again");
    assert!(!alive(mpid), "monitor still runs");
    assert!(!monitor_dir(&env.run_dir, "pod-a").exists());
    env.remove_bundle("c1").await;
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_reattach_reopen_and_rss() {
    if !root() {
        return;
    }
    let env = Env::new("exec");
    let rt = env.runtime();
    let ticker = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done";
    let req = env
        .bundle("pod-b", "c2", &["sh", "-c", ticker], false)
        .await;
    rt.create(&req).await.expect("create");
    let running = rt.start("pod-b", "c2").await.expect("start");
    assert_eq!(running.status, ProcessStatus::Running);
    let pid = running.pid.unwrap();

    // exec_sync: output, exit code, cap, timeout.
    let exec = |args: &[&str], timeout: Option<Duration>, max: usize| ExecRequest {
        container_id: "c2".into(),
        process: process(args, false),
        timeout,
        max_output: max,
        drain: Duration::from_secs(2),
    };
    let r = rt
        .exec_sync(
            "pod-b",
            &exec(
                &["sh", "-c", "echo hi; echo oops >&2; exit 5"],
                None,
                1 << 24,
            ),
        )
        .await
        .expect("exec");
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice()),
        (&b"hi\n"[..], &b"oops\n"[..])
    );
    assert_eq!((r.exit_code, r.timed_out), (5, false));
    let r = rt
        .exec_sync(
            "pod-b",
            &exec(&["sh", "-c", "yes | head -c 100000"], None, 1000),
        )
        .await
        .expect("exec capped");
    assert_eq!((r.stdout.len(), r.exit_code), (1000, 0));
    let t0 = Instant::now();
    let r = rt
        .exec_sync(
            "pod-b",
            &exec(&["sleep", "30"], Some(Duration::from_millis(300)), 1 << 24),
        )
        .await
        .expect("exec timeout");
    assert!(r.timed_out, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let missing = rt
        .exec_sync("pod-b", &exec(&["/no/such/program"], None, 1 << 24))
        .await;
    assert!(missing.is_err(), "{missing:?}");

    // reopen-log: the kubelet renames the file away, the monitor starts a new one.
    let log = env.log_path("c2");
    eventually("ticks in the log", || !log_records(&log).is_empty()).await;
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    rt.reopen_log("pod-b", "c2").await.expect("reopen");
    eventually("ticks in the new log", || log_records(&log).len() >= 2).await;
    assert!(
        log_records(&log)
            .iter()
            .all(|r| r.0 == "stdout" && r.1 == "F")
    );

    let mpid = monitor_pid(&env.run_dir, "pod-b");
    println!("monitor RSS: {} KiB", vm_rss_kib(mpid));

    // The client goes away mid-wait (as if berthd were killed); a new one reattaches.
    let waiting = rt
        .wait("pod-b", "c2", Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(waiting.status, ProcessStatus::Running);
    drop(rt);
    let rt = env.runtime();
    let st = rt.state("pod-b", "c2").await.expect("state");
    assert_eq!((st.status, st.pid), (ProcessStatus::Running, Some(pid)));
    let del = rt.delete("pod-b", "c2").await;
    assert!(del.is_err(), "deleting a running container: {del:?}");
    rt.kill("pod-b", "c2", libc::SIGKILL, false)
        .await
        .expect("kill");
    let done = rt
        .wait("pod-b", "c2", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.exit_code),
        (ProcessStatus::Exited, Some(137))
    );
    rt.kill("pod-b", "c2", libc::SIGKILL, false)
        .await
        .expect("kill exited");
    println!("monitor RSS after the run: {} KiB", vm_rss_kib(mpid));

    rt.delete("pod-b", "c2").await.expect("delete");
    rt.release_pod("pod-b").await.expect("release");
    assert!(!alive(mpid));
    env.remove_bundle("c2").await;
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_kills_everything_and_tty_logs() {
    if !root() {
        return;
    }
    let env = Env::new("release");
    let rt = env.runtime();
    let req = env
        .bundle(
            "pod-c",
            "t1",
            &["sh", "-c", "echo on a tty; exec sleep 1000"],
            true,
        )
        .await;
    rt.create(&req).await.expect("create tty");
    let st = rt.start("pod-c", "t1").await.expect("start tty");
    let pid = st.pid.unwrap();
    let req = env.bundle("pod-c", "n1", &["sleep", "1000"], false).await;
    rt.create(&req).await.expect("create, never started");
    let log = env.log_path("t1");
    eventually("tty output", || !log_records(&log).is_empty()).await;
    let recs = log_records(&log);
    assert_eq!(recs[0], ("stdout".into(), "F".into(), "on a tty".into()));

    let mpid = monitor_pid(&env.run_dir, "pod-c");
    rt.release_pod("pod-c")
        .await
        .expect("release with live containers");
    assert!(!alive(pid) && !alive(mpid));
    for id in ["t1", "n1"] {
        env.remove_bundle(id).await;
        let cg = format!("/sys/fs/cgroup/memory{}", Env::cgroups_path(id));
        assert!(!std::path::Path::new(&cg).exists(), "{cg} left");
    }
    env.assert_clean();
}
