//! What the Docker front door asks of the engine beyond CRI, on the fake ports: a container
//! that runs again after it exited (same id, kept layer), restart, kill with a signal,
//! pause/unpause, rename, wait, and restart policies with their back-off, also across an
//! engine restart. CRI containers keep running once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::container::ContainerConfig;
use berth_core::container::record::{ContainerRecord, ContainerState};
use berth_core::image::ImageStore;
use berth_core::pod::record::{DnsConfig, NamespaceMode, NamespaceModes};
use berth_engine::testing::Env;
use berth_engine::{
    ContainerSpec, Engine, ErrorKind, PodSpec, RestartPolicy, Single, WaitCondition,
};

fn pod(name: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        namespace: "docker".into(),
        uid: format!("uid-{name}"),
        attempt: 0,
        runtime_handler: String::new(),
        hostname: String::new(),
        log_directory: "/var/log/berth-test".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        modes: NamespaceModes {
            network: NamespaceMode::Pod,
            pid: NamespaceMode::Container,
            ipc: NamespaceMode::Pod,
        },
        userns: None,
        port_mappings: Vec::new(),
        dns: DnsConfig::default(),
        sysctls: BTreeMap::new(),
        cgroup_parent: String::new(),
        config: serde_json::json!({"name": name}),
    }
}

fn container(name: &str, args: &[&str], restart: Option<RestartPolicy>) -> ContainerSpec {
    ContainerSpec {
        pod_id: String::new(),
        config: ContainerConfig {
            name: name.into(),
            image: "busybox:latest".into(),
            command: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        log_path: String::new(),
        pod_privileged: false,
        restart,
    }
}

async fn engine(env: &Env) -> Arc<Engine> {
    env.store
        .pull(&"busybox:latest".parse().unwrap(), None)
        .await
        .unwrap();
    env.engine(None).await
}

/// A Docker container: a pod of its own with one container. Its pinned netns exists, so
/// an engine opened again finds the pod ready (as after a berthd restart, no reboot).
async fn single(engine: &Arc<Engine>, name: &str, args: &[&str], p: RestartPolicy) -> Single {
    let s = engine
        .create_single(pod(name), container(name, args, Some(p)))
        .await
        .unwrap();
    let net = engine.pod(&s.pod_id).unwrap().namespaces.net.unwrap();
    std::fs::create_dir_all(net.parent().unwrap()).unwrap();
    std::fs::write(net, "").unwrap();
    s
}

/// Polls the record until `pred` holds (the supervisor works in the background).
async fn until(
    engine: &Engine,
    id: &str,
    within: Duration,
    pred: impl Fn(&ContainerRecord) -> bool,
) -> ContainerRecord {
    let end = Instant::now() + within;
    loop {
        let rec = engine.container(id).unwrap();
        if pred(&rec) {
            return rec;
        }
        assert!(Instant::now() < end, "not reached in {within:?}: {rec:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn remove_all(env: &Env, engine: &Engine) {
    for p in engine.list_pods() {
        engine.remove_pod(&p.id).await.unwrap();
    }
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}

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

#[tokio::test]
async fn restart_policies_with_back_off_and_manual_stops() {
    let env = Env::new();
    let engine = engine(&env).await;
    // always: exits at once (the fake's `true`), comes back after 100 ms, 200 ms, 400 ms...
    let always = single(&engine, "always", &["true"], RestartPolicy::Always).await;
    let t = Instant::now();
    engine.start_container(&always.container_id).await.unwrap();
    // Waiting out its back-off, it is "restarting".
    let end = Instant::now() + Duration::from_secs(2);
    while !engine.is_restarting(&always.container_id) {
        assert!(Instant::now() < end, "never seen restarting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    until(&engine, &always.container_id, Duration::from_secs(3), |r| {
        r.restart_count >= 3
    })
    .await;
    // 100 + 200 + 400 ms of back-off at least.
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );

    // on-failure:2: two restarts, then it stays exited.
    let fails = single(
        &engine,
        "fails",
        &["false"],
        RestartPolicy::OnFailure { max_retries: 2 },
    )
    .await;
    engine.start_container(&fails.container_id).await.unwrap();
    let rec = until(&engine, &fails.container_id, Duration::from_secs(3), |r| {
        r.restart_count == 2 && r.state == ContainerState::Exited
    })
    .await;
    assert_eq!(rec.exit_code, 1);
    // on-failure and a clean exit: no restart.
    let ok = single(
        &engine,
        "ok",
        &["true"],
        RestartPolicy::OnFailure { max_retries: 0 },
    )
    .await;
    engine.start_container(&ok.container_id).await.unwrap();

    // A manual stop holds `always` back.
    engine
        .stop_container(&always.container_id, Duration::ZERO)
        .await
        .unwrap();
    let stopped = engine.container(&always.container_id).unwrap();
    assert!(stopped.manually_stopped);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = engine.container(&always.container_id).unwrap();
    assert_eq!(later.restart_count, stopped.restart_count);
    assert_eq!(later.state, ContainerState::Exited);
    assert_eq!(
        engine.container(&fails.container_id).unwrap().restart_count,
        2
    );
    let ok_rec = engine.container(&ok.container_id).unwrap();
    assert_eq!(
        (ok_rec.state, ok_rec.restart_count),
        (ContainerState::Exited, 0)
    );
    assert!(!engine.is_restarting(&always.container_id));

    // A new policy (`docker update --restart`) applies from the next exit.
    engine
        .update_restart_policy(&ok.container_id, RestartPolicy::Always)
        .await
        .unwrap();
    engine.start_container(&ok.container_id).await.unwrap();
    until(&engine, &ok.container_id, Duration::from_secs(2), |r| {
        r.restart_count >= 1
    })
    .await;
    remove_all(&env, &engine).await;
}

#[tokio::test]
async fn policies_are_honoured_after_an_engine_restart() {
    let env = Env::new();
    let engine = engine(&env).await;
    let sleep = ["sleep", "1000"];
    let failed = single(
        &engine,
        "failed",
        &sleep,
        RestartPolicy::OnFailure { max_retries: 0 },
    )
    .await;
    let stopped_always = single(&engine, "always", &sleep, RestartPolicy::Always).await;
    let stopped_unless = single(&engine, "unless", &sleep, RestartPolicy::UnlessStopped).await;
    let no = single(&engine, "no", &sleep, RestartPolicy::No).await;
    for s in [&failed, &stopped_always, &stopped_unless, &no] {
        engine.start_container(&s.container_id).await.unwrap();
    }
    for s in [&stopped_always, &stopped_unless] {
        engine
            .stop_container(&s.container_id, Duration::ZERO)
            .await
            .unwrap();
    }
    drop(engine);
    // While no engine runs, two processes exit with an error.
    env.runtime.exit(&failed.container_id, 1);
    env.runtime.exit(&no.container_id, 1);

    let engine = env.engine(None).await;
    // on-failure restarts the failed one; always comes back although it was stopped by
    // hand (Docker's difference to unless-stopped); no stays down.
    for s in [&failed, &stopped_always] {
        until(&engine, &s.container_id, Duration::from_secs(2), |r| {
            r.state == ContainerState::Running
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in [&stopped_unless, &no] {
        assert_eq!(
            engine.container(&s.container_id).unwrap().state,
            ContainerState::Exited
        );
    }
    // And it is followed again: its next failure restarts it.
    env.runtime.exit(&failed.container_id, 2);
    until(&engine, &failed.container_id, Duration::from_secs(2), |r| {
        r.state == ContainerState::Running && r.restart_count == 1
    })
    .await;
    remove_all(&env, &engine).await;
}
