//! Restart policies on the fake ports: Docker's back-off, manual stops, `on-failure:N`,
//! a policy changed, and policies honoured when the engine opens again (berthd restarted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "docker_support.rs"]
mod support;

use std::time::{Duration, Instant};

use berth_core::container::record::ContainerState;
use berth_engine::RestartPolicy;
use support::*;

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

#[tokio::test]
async fn after_a_reboot_a_docker_pod_is_made_again_for_its_container() {
    let env = Env::new();
    let engine = engine(&env).await;
    let sleep = ["sleep", "1000"];
    let always = single(&engine, "always", &sleep, RestartPolicy::Always).await;
    let no = single(&engine, "no", &sleep, RestartPolicy::No).await;
    for s in [&always, &no] {
        engine.start_container(&s.container_id).await.unwrap();
    }
    drop(engine);
    // A reboot: the processes and the pinned namespaces are gone.
    for s in [&always, &no] {
        env.runtime.procs.lock().unwrap().remove(&s.container_id);
    }
    for s in [&always, &no] {
        let net = env
            .dir
            .path()
            .join("run/pods")
            .join(&s.pod_id)
            .join("ns/net");
        std::fs::remove_file(net).unwrap();
    }

    let engine = env.engine(None).await;
    // always: its pod is made again in place (same ids) and it runs.
    until(&engine, &always.container_id, Duration::from_secs(2), |r| {
        r.state == ContainerState::Running
    })
    .await;
    let revived = engine.pod(&always.pod_id).unwrap();
    assert_eq!(revived.state, berth_core::pod::PodState::Ready);
    assert!(revived.ip.is_some());
    // no: stays down with its pod, until started by hand.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rec = engine.container(&no.container_id).unwrap();
    assert_eq!((rec.state, rec.exit_code), (ContainerState::Exited, 255));
    assert_eq!(
        engine.pod(&no.pod_id).unwrap().state,
        berth_core::pod::PodState::NotReady
    );
    engine.start_container(&no.container_id).await.unwrap();
    assert_eq!(
        engine.pod(&no.pod_id).unwrap().state,
        berth_core::pod::PodState::Ready
    );

    // A pod stopped as a whole holds its containers' policies back; a start makes it
    // ready again.
    engine.stop_pod(&always.pod_id).await.unwrap();
    let rec = engine.container(&always.container_id).unwrap();
    assert!(rec.manually_stopped);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        engine.container(&always.container_id).unwrap().state,
        ContainerState::Exited
    );
    engine.start_container(&always.container_id).await.unwrap();
    assert_eq!(
        engine.container(&always.container_id).unwrap().state,
        ContainerState::Running
    );

    // A CRI pod is never made again.
    let pod_id = engine.run_pod(pod("cri")).await.unwrap();
    let mut spec = container("cri", &sleep, None);
    spec.pod_id = pod_id.clone();
    let id = engine.create_container(spec).await.unwrap();
    engine.stop_pod(&pod_id).await.unwrap();
    let e = engine.start_container(&id).await.unwrap_err();
    assert_eq!(e.kind(), berth_engine::ErrorKind::FailedPrecondition);
    assert_eq!(
        engine.pod(&pod_id).unwrap().state,
        berth_core::pod::PodState::NotReady
    );
    remove_all(&env, &engine).await;
}
