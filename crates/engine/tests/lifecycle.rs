//! The engine as a front door drives it, on the fake ports: a one-container pod from start
//! to finish, rollback, idempotent stop/remove, name conflicts, events and recovery after a
//! restart. No protocol in sight: core types in, records out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use berth_core::container::record::ContainerState;
use berth_core::pod::PodState;
use berth_engine::testing::{Env, container_spec, pod_spec};
use berth_engine::{ErrorKind, EventKind, PodSpec, Subject};

fn pod(name: &str) -> PodSpec {
    PodSpec {
        labels: BTreeMap::from([("io.berth.frontdoor".into(), "test".into())]),
        ..pod_spec(name)
    }
}

#[tokio::test]
async fn a_one_container_pod_from_run_to_remove_leaves_nothing() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let mut events = engine.events().subscribe();

    let pod_id = engine.run_pod(pod("web")).await.unwrap();
    let ctr = engine
        .create_container(container_spec(&pod_id, "web", &["sleep", "1000"]))
        .await
        .unwrap();
    engine.start_container(&ctr).await.unwrap();
    let rec = engine.container_status(&ctr[..12]).await.unwrap();
    assert_eq!(rec.state, ContainerState::Running);
    assert_eq!(rec.pod_id, pod_id);
    assert_eq!(engine.pod(&pod_id).unwrap().state, PodState::Ready);
    assert_eq!(engine.list_containers().await.len(), 1);

    engine
        .stop_container(&ctr, Duration::from_secs(1))
        .await
        .unwrap();
    let rec = engine.container(&ctr).unwrap();
    assert_eq!(rec.state, ContainerState::Exited);
    assert_eq!(rec.exit_code, 128 + 15, "the stop signal ended it");
    // A stopped container cannot start again.
    let e = engine.start_container(&ctr).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);

    engine.stop_pod(&pod_id).await.unwrap();
    assert_eq!(engine.pod(&pod_id).unwrap().state, PodState::NotReady);
    engine.remove_pod(&pod_id).await.unwrap();
    assert!(engine.list_pods().is_empty());
    assert!(engine.list_containers().await.is_empty());
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
    assert_eq!(*env.runtime.released_pods.lock().unwrap(), vec![pod_id]);

    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push((ev.subject, ev.kind));
    }
    use {EventKind::*, Subject::*};
    assert_eq!(
        seen,
        [
            (Pod, Created),
            (Pod, Started),
            (Container, Created),
            (Container, Started),
            (Container, Stopped),
            (Pod, Stopped),
            (Container, Deleted),
            (Pod, Deleted),
        ]
    );
}

#[tokio::test]
async fn stop_and_remove_of_unknown_objects_succeed_and_lookups_say_not_found() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    engine.stop_pod("nope").await.unwrap();
    engine.remove_pod("nope").await.unwrap();
    engine.stop_container("nope", Duration::ZERO).await.unwrap();
    engine.remove_container("nope").await.unwrap();
    assert_eq!(engine.pod("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        engine.container("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let e = engine
        .create_container(container_spec("nope", "c", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn names_in_use_and_bad_specs_are_refused() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let pod_id = engine.run_pod(pod("db")).await.unwrap();
    let e = engine.run_pod(pod("db")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains(&pod_id), "{e}");

    engine
        .create_container(container_spec(&pod_id, "db", &["sleep", "1"]))
        .await
        .unwrap();
    let e = engine
        .create_container(container_spec(&pod_id, "db", &["sleep", "1"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);

    let mut missing = container_spec(&pod_id, "other", &["true"]);
    missing.config.image = "nothere:1".into();
    let e = engine.create_container(missing).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("pull it first"), "{e}");

    let mut bad = pod("bad");
    bad.runtime_handler = "nosuch".into();
    let e = engine.run_pod(bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("runtime.handlers"), "{e}");

    engine.stop_pod(&pod_id).await.unwrap();
    let e = engine
        .create_container(container_spec(&pod_id, "late", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    engine.remove_pod(&pod_id).await.unwrap();
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}

#[tokio::test]
async fn a_failed_pod_is_rolled_back() {
    for step in ["cgroup", "namespaces", "files", "network", "record"] {
        let env = Env::new();
        let engine = env.engine(Some(step)).await;
        let e = engine.run_pod(pod("broken")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{step}");
        assert!(engine.list_pods().is_empty(), "{step}");
        assert!(
            env.ledger.held().is_empty(),
            "{step}: {:?}",
            env.ledger.held()
        );
    }
}

#[tokio::test]
async fn a_restarted_engine_finds_its_pods_and_notices_exits() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let pod_id = engine.run_pod(pod("svc")).await.unwrap();
    let ctr = engine
        .create_container(container_spec(&pod_id, "svc", &["sleep", "1000"]))
        .await
        .unwrap();
    engine.start_container(&ctr).await.unwrap();
    drop(engine);

    // The process exits while no engine runs.
    {
        let mut procs = env.runtime.procs.lock().unwrap();
        let st = procs.get_mut(&ctr).unwrap();
        st.status = berth_core::runtime::ProcessStatus::Exited;
        st.exit_code = Some(3);
        st.finished_at = Some(9);
    }
    let engine = env.engine(None).await;
    // The fakes pin no real network namespace: recovery finds it gone, as after a reboot,
    // and the pod is NotReady.
    assert_eq!(engine.pod(&pod_id).unwrap().state, PodState::NotReady);
    let rec = engine.container(&ctr).unwrap();
    assert_eq!((rec.state, rec.exit_code), (ContainerState::Exited, 3));

    engine.remove_pod(&pod_id).await.unwrap();
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}

#[tokio::test]
async fn usage_figures_come_per_container_and_pod() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let pod_id = engine.run_pod(pod("busy")).await.unwrap();
    let ctr = engine
        .create_container(container_spec(&pod_id, "busy", &["sleep", "1000"]))
        .await
        .unwrap();
    engine.start_container(&ctr).await.unwrap();

    let first = engine
        .container_usage(vec![engine.container(&ctr).unwrap()])
        .await;
    assert_eq!(first.len(), 1);
    assert!(first[0].sample.usage.cpu_usage_ns.is_some());
    assert!(first[0].layer.is_some());
    let pods = engine.pod_usage(engine.list_pods()).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].record.id, pod_id);
    assert_eq!(pods[0].containers.len(), 1);
    assert_eq!(pods[0].containers[0].record.id, ctr);
    // A second read of the container gives a rate against the first.
    assert!(pods[0].containers[0].sample.nano_cores.is_some());

    engine.remove_pod(&pod_id).await.unwrap();
    engine.prune_samples();
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}

#[tokio::test]
async fn a_single_container_pod_is_made_whole_or_not_at_all() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let one = engine
        .create_single(pod("one"), container_spec("", "one", &["sleep", "1000"]))
        .await
        .unwrap();
    assert_eq!(
        engine.container(&one.container_id).unwrap().pod_id,
        one.pod_id
    );
    engine.start_container(&one.container_id).await.unwrap();

    // The container cannot be made: its pod goes too.
    let mut bad = container_spec("", "two", &["true"]);
    bad.config.image = "nothere:1".into();
    let e = engine.create_single(pod("two"), bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(engine.list_pods().len(), 1);

    engine.remove_pod(&one.pod_id).await.unwrap();
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}
