//! What Docker's front door needs of the runtime, for real: pause/resume through the
//! cgroup freezer (the host's v1 hierarchy; v2 in the VM lane), kill with any signal,
//! SIGKILL of a paused container, and a container made again from the same bundle after
//! it exited (its writable layer and log kept). Needs root; skips otherwise. Each test
//! has its own container id: the cgroup path is made of the test process' PID and it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "monitor_support.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_core::runtime::{ContainerRuntime, ProcessStatus};
use berth_linux::cgroup::freezer::Freezer;
use berth_linux::cgroup::{DEFAULT_ROOT, LinuxCgroups};
use support::*;

fn log_len(env: &Env, id: &str) -> usize {
    log_records(&env.log_path(id)).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_kill_a_paused_container() {
    if !root() {
        return;
    }
    let env = Env::new("pause");
    let rt = env.runtime();
    let script = "while true; do echo tick; sleep 0.02; done";
    let req = env
        .bundle("pod-p", "p1", &["sh", "-c", script], false)
        .await;
    rt.create(&req).await.expect("create");
    rt.start("pod-p", "p1").await.expect("start");
    eventually("output", || log_len(&env, "p1") > 3).await;

    rt.pause("pod-p", "p1").await.expect("pause");
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    let freezer = Freezer::locate(&cg, &Env::cgroups_path("p1")).expect("freezer");
    assert!(freezer.is_frozen().unwrap(), "frozen after pause");
    if let Freezer::V1(dir) = &freezer {
        let state = std::fs::read_to_string(dir.join("freezer.state")).unwrap();
        assert_eq!(state.trim(), "FROZEN");
    }
    // Frozen: no output at all.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frozen_at = log_len(&env, "p1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log_len(&env, "p1"),
        frozen_at,
        "a frozen container wrote output"
    );
    assert_eq!(
        rt.state("pod-p", "p1").await.unwrap().status,
        ProcessStatus::Running
    );

    rt.resume("pod-p", "p1").await.expect("resume");
    assert!(!freezer.is_frozen().unwrap());
    eventually("output after resume", || {
        log_len(&env, "p1") > frozen_at + 3
    })
    .await;
    // Resuming what is not frozen is fine.
    rt.resume("pod-p", "p1").await.expect("resume again");

    // SIGKILL reaches a paused container: the monitor thaws it.
    rt.pause("pod-p", "p1").await.expect("pause again");
    let t = Instant::now();
    rt.kill("pod-p", "p1", libc::SIGKILL, false)
        .await
        .expect("kill");
    let st = rt
        .wait("pod-p", "p1", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (st.status, st.exit_code),
        (ProcessStatus::Exited, Some(137))
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Not running: pause is refused.
    let e = rt.pause("pod-p", "p1").await.unwrap_err();
    assert!(e.to_string().contains("not running"), "{e}");

    rt.delete("pod-p", "p1").await.expect("delete");
    rt.release_pod("pod-p").await.expect("release");
    env.remove_bundle("p1").await;
    assert!(
        !Path::new(DEFAULT_ROOT)
            .join("freezer")
            .join(Env::cgroups_path("p1").trim_start_matches('/'))
            .exists()
    );
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_with_a_signal_the_program_traps() {
    if !root() {
        return;
    }
    let env = Env::new("kill");
    let rt = env.runtime();
    let script = "trap 'echo got usr1; exit 7' USR1; echo ready; while true; do sleep 0.05; done";
    let req = env
        .bundle("pod-k", "k1", &["sh", "-c", script], false)
        .await;
    rt.create(&req).await.expect("create");
    rt.start("pod-k", "k1").await.expect("start");
    eventually("ready", || {
        log_records(&env.log_path("k1"))
            .iter()
            .any(|r| r.2 == "ready")
    })
    .await;
    rt.kill("pod-k", "k1", libc::SIGUSR1, false)
        .await
        .expect("kill -s USR1");
    let st = rt
        .wait("pod-k", "k1", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((st.status, st.exit_code), (ProcessStatus::Exited, Some(7)));
    assert!(
        log_records(&env.log_path("k1"))
            .iter()
            .any(|r| r.2 == "got usr1")
    );
    rt.delete("pod-k", "k1").await.expect("delete");
    rt.release_pod("pod-k").await.expect("release");
    env.remove_bundle("k1").await;
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_made_again_keeps_its_layer_and_log() {
    if !root() {
        return;
    }
    let env = Env::new("again");
    let rt = env.runtime();
    let script = "echo run >> /runs; echo runs=$(wc -l < /runs)";
    let req = env
        .bundle("pod-r", "r1", &["sh", "-c", script], false)
        .await;
    for n in 1..=2 {
        if n > 1 {
            // What the engine does to run an exited container again: release the old run,
            // keep the mount (mounting again is a no-op), create from the same bundle.
            rt.delete("pod-r", "r1").await.expect("delete");
            let rootfs = berth_linux::rootfs::OverlayRootfs::new();
            let again = berth_core::runtime::Rootfs::mount(
                &rootfs,
                &env.bundle_dir("r1"),
                std::slice::from_ref(&env.layer),
                false,
            )
            .await
            .expect("mount again");
            assert_eq!(again, env.bundle_dir("r1").join("rootfs"));
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let target = env.bundle_dir("r1").join("rootfs");
            let n_mounts = mounts
                .lines()
                .filter(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
                .count();
            assert_eq!(n_mounts, 1, "mounted once");
        }
        rt.create(&req).await.expect("create");
        rt.start("pod-r", "r1").await.expect("start");
        let st = rt
            .wait("pod-r", "r1", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!((st.status, st.exit_code), (ProcessStatus::Exited, Some(0)));
    }
    let out: Vec<String> = log_records(&env.log_path("r1"))
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(out, ["runs=1", "runs=2"], "log appended, layer kept");
    rt.delete("pod-r", "r1").await.expect("delete");
    rt.release_pod("pod-r").await.expect("release");
    env.remove_bundle("r1").await;
    env.assert_clean();
}
