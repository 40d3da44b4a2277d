//! A pod monitor killed -9: its containers live on, a new monitor (started on the next
//! call) recovers them from disk: exit records of finished ones, live ones watched until
//! they end (exit code unknown: 255). Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "monitor_support.rs"]
mod support;

use std::time::Duration;

use berth_core::runtime::{ContainerRuntime, ProcessStatus};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_killed_then_recovered() {
    if !root() {
        return;
    }
    let env = Env::new("recovery");
    let rt = env.runtime();
    let req = env
        .bundle("pod-r", "done", &["sh", "-c", "exit 7"], false)
        .await;
    rt.create(&req).await.expect("create");
    rt.start("pod-r", "done").await.expect("start");
    let st = rt
        .wait("pod-r", "done", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(st.exit_code, Some(7));
    let req = env.bundle("pod-r", "live", &["sleep", "1000"], false).await;
    rt.create(&req).await.expect("create");
    let pid = rt.start("pod-r", "live").await.expect("start").pid.unwrap();

    let old = monitor_pid(&env.run_dir, "pod-r");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::SIGKILL).unwrap();
    eventually("the monitor to die", || !alive(old)).await;
    assert!(alive(pid), "the container died with its monitor");

    let rt = env.runtime();
    let done = rt.state("pod-r", "done").await.expect("state");
    assert_eq!(
        (done.status, done.exit_code),
        (ProcessStatus::Exited, Some(7))
    );
    let new = monitor_pid(&env.run_dir, "pod-r");
    assert_ne!(new, old);
    let live = rt.state("pod-r", "live").await.expect("state");
    assert_eq!((live.status, live.pid), (ProcessStatus::Running, Some(pid)));
    rt.kill("pod-r", "live", libc::SIGKILL, false)
        .await
        .expect("kill");
    let st = rt
        .wait("pod-r", "live", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (st.status, st.exit_code),
        (ProcessStatus::Exited, Some(255))
    );
    assert!(!alive(pid));

    rt.release_pod("pod-r").await.expect("release");
    assert!(!alive(new));
    for id in ["done", "live"] {
        env.remove_bundle(id).await;
    }
    env.assert_clean();
}
