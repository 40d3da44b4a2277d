//! What the Docker front door asks of the engine beyond CRI, on the fake ports: a container
//! that runs again after it exited (same id, kept layer), restart, kill with a signal,
//! pause/unpause, rename, wait. CRI containers keep running once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "docker_support.rs"]
mod support;

use std::time::{Duration, Instant};

use berth_core::container::record::ContainerState;
use berth_engine::{ErrorKind, RestartPolicy, WaitCondition};
use support::*;

#[tokio::test]
async fn a_cri_container_still_runs_only_once() {
    let env = Env::new();
    let engine = engine(&env).await;
    let pod_id = engine.run_pod(pod("cri")).await.unwrap();
    let mut spec = container("cri", &["sleep", "1000"], None);
    spec.pod_id = pod_id;
    let id = engine.create_container(spec).await.unwrap();
    engine.start_container(&id).await.unwrap();
    engine.stop_container(&id, Duration::ZERO).await.unwrap();
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state, ContainerState::Exited);
    assert!(!rec.manually_stopped, "CRI records carry no Docker state");
    let e = engine.start_container(&id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = engine
        .restart_container(&id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = engine
        .update_restart_policy(&id, RestartPolicy::Always)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    remove_all(&env, &engine).await;
}

#[tokio::test]
async fn an_exited_docker_container_runs_again_with_its_layer() {
    let env = Env::new();
    let engine = engine(&env).await;
    let s = single(&engine, "web", &["sleep", "1000"], RestartPolicy::No).await;
    let id = &s.container_id;
    engine.start_container(id).await.unwrap();
    let first = engine.container(id).unwrap();
    // Something written into the writable layer.
    std::fs::write(first.bundle.join("rootfs/etc/motd"), "kept").unwrap();

    engine.stop_container(id, Duration::ZERO).await.unwrap();
    let stopped = engine.container(id).unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(stopped.manually_stopped);
    assert_eq!(stopped.exit_code, 137);

    engine.start_container(id).await.unwrap();
    let again = engine.container(id).unwrap();
    assert_eq!(again.state, ContainerState::Running);
    assert_eq!((again.id.as_str(), again.exit_code), (id.as_str(), 0));
    assert!(!again.manually_stopped);
    // Docker counts only the policy's restarts; the last finish time stays until the next.
    assert_eq!(again.restart_count, 0);
    assert_eq!(again.finished_at, stopped.finished_at);
    assert_eq!(
        (again.bundle.clone(), again.log_path.clone()),
        (first.bundle, first.log_path)
    );
    let motd = std::fs::read_to_string(again.bundle.join("rootfs/etc/motd")).unwrap();
    assert_eq!(motd, "kept");
    // The runtime made it anew.
    assert_eq!(
        env.runtime.procs.lock().unwrap()[id].status,
        berth_core::runtime::ProcessStatus::Running
    );

    // restart: stop, then run again.
    engine
        .restart_container(id, Duration::from_secs(1))
        .await
        .unwrap();
    let r = engine.container(id).unwrap();
    assert_eq!(r.state, ContainerState::Running);
    assert!(r.finished_at > 0);
    remove_all(&env, &engine).await;
}

#[tokio::test]
async fn kill_pause_and_unpause() {
    let env = Env::new();
    let engine = engine(&env).await;
    let s = single(&engine, "k", &["sleep", "1000"], RestartPolicy::Always).await;
    let id = &s.container_id;
    let e = engine.kill_container(id, 9).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "not running yet");
    engine.start_container(id).await.unwrap();

    // A signal the program ignores: it runs on, and no stop is recorded.
    engine.kill_container(id, 10).await.unwrap();
    let rec = engine.container(id).unwrap();
    assert_eq!(
        (rec.state, rec.manually_stopped),
        (ContainerState::Running, false)
    );
    assert_eq!(
        env.runtime.signals.lock().unwrap().last().unwrap(),
        &(id.clone(), 10)
    );
    let e = engine.kill_container(id, 0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    engine.pause_container(id).await.unwrap();
    assert!(engine.container(id).unwrap().paused);
    assert!(env.runtime.paused.lock().unwrap().contains(id));
    // Still running for CRI (containerd reports a paused container RUNNING).
    assert_eq!(
        engine.container_status(id).await.unwrap().state,
        ContainerState::Running
    );
    let e = engine.pause_container(id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    engine.unpause_container(id).await.unwrap();
    assert!(!engine.container(id).unwrap().paused);
    assert!(!env.runtime.paused.lock().unwrap().contains(id));
    let e = engine.unpause_container(id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    engine.pause_container(id).await.unwrap();
    let e = engine.start_container(id).await.unwrap_err();
    assert!(e.to_string().contains("unpause"), "{e}");
    engine.unpause_container(id).await.unwrap();
    let e = engine.start_container(id).await.unwrap_err();
    assert!(e.to_string().contains("already running"), "{e}");

    // A paused container is thawed by SIGKILL and ends; `always` does not bring back a
    // container killed by hand.
    engine.pause_container(id).await.unwrap();
    engine.kill_container(id, 9).await.unwrap();
    let rec = engine.container(id).unwrap();
    assert_eq!(rec.state, ContainerState::Exited);
    assert_eq!(rec.exit_code, 137);
    assert!(rec.manually_stopped && !rec.paused);
    assert!(!env.runtime.paused.lock().unwrap().contains(id));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(engine.container(id).unwrap().state, ContainerState::Exited);
    let e = engine.pause_container(id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);

    // A paused container that is stopped is thawed after its stop signal (so that it can
    // act on it), as Docker does.
    engine.start_container(id).await.unwrap();
    engine.pause_container(id).await.unwrap();
    engine
        .stop_container(id, Duration::from_secs(5))
        .await
        .unwrap();
    let rec = engine.container(id).unwrap();
    assert_eq!(
        (rec.state, rec.exit_code),
        (ContainerState::Exited, 128 + 15)
    );
    assert!(!rec.paused && !env.runtime.paused.lock().unwrap().contains(id));
    remove_all(&env, &engine).await;
}

#[tokio::test]
async fn rename_honours_names_in_use() {
    let env = Env::new();
    let engine = engine(&env).await;
    let a = single(&engine, "a", &["sleep", "1000"], RestartPolicy::No).await;
    let b = single(&engine, "b", &["sleep", "1000"], RestartPolicy::No).await;
    engine.rename_container(&a.container_id, "c").await.unwrap();
    assert_eq!(engine.container(&a.container_id).unwrap().name, "c");
    // The pod made with it follows.
    assert_eq!(engine.pod(&a.pod_id).unwrap().name, "c");
    let e = engine
        .rename_container(&a.container_id, "b")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains(&b.pod_id), "{e}");
    let e = engine
        .rename_container(&a.container_id, "")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(engine.container(&a.container_id).unwrap().name, "c");
    // A new container may take the old name.
    single(&engine, "a", &["sleep", "1000"], RestartPolicy::No).await;
    remove_all(&env, &engine).await;
}

#[tokio::test]
async fn wait_answers_the_exit_code_when_it_happens() {
    let env = Env::new();
    let engine = engine(&env).await;
    let s = single(&engine, "w", &["sleep", "1000"], RestartPolicy::No).await;
    let id = s.container_id.clone();

    // Created: not running, so at once.
    let code = engine.wait_container(&id, WaitCondition::NotRunning).await;
    assert_eq!(code.unwrap(), 0);

    // next-exit before the start (what `docker run` does).
    let next = tokio::spawn({
        let (engine, id) = (engine.clone(), id.clone());
        async move { engine.wait_container(&id, WaitCondition::NextExit).await }
    });
    let removed = tokio::spawn({
        let (engine, id) = (engine.clone(), id.clone());
        async move { engine.wait_container(&id, WaitCondition::Removed).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    engine.start_container(&id).await.unwrap();
    let running = tokio::spawn({
        let (engine, id) = (engine.clone(), id.clone());
        async move { engine.wait_container(&id, WaitCondition::NotRunning).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!next.is_finished() && !running.is_finished());
    let t = Instant::now();
    env.runtime.exit(&id, 3);
    assert_eq!(next.await.unwrap().unwrap(), 3);
    assert_eq!(running.await.unwrap().unwrap(), 3);
    // Followed through the runtime's wait, not the 1 s exit watcher poll.
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Already exited: at once.
    assert_eq!(
        engine
            .wait_container(&id, WaitCondition::NotRunning)
            .await
            .unwrap(),
        3
    );
    assert!(!removed.is_finished());
    engine.remove_pod(&s.pod_id).await.unwrap();
    assert_eq!(removed.await.unwrap().unwrap(), 3);
    let e = engine
        .wait_container(&id, WaitCondition::NotRunning)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    remove_all(&env, &engine).await;
}
