//! Helpers of the docker_* tests (included with `#[path]`): a Docker container on the
//! fake ports is a pod of its own with one container that has a restart policy.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::container::record::ContainerRecord;
pub use berth_engine::testing::Env;
use berth_engine::testing::{container_spec, pod_spec};
use berth_engine::{ContainerSpec, Engine, PodSpec, RestartPolicy, Single};

pub fn pod(name: &str) -> PodSpec {
    PodSpec {
        log_directory: "/var/log/berth-test".into(),
        ..pod_spec(name)
    }
}

pub fn container(name: &str, args: &[&str], restart: Option<RestartPolicy>) -> ContainerSpec {
    ContainerSpec {
        restart,
        ..container_spec("", name, args)
    }
}

pub async fn engine(env: &Env) -> Arc<Engine> {
    env.engine_with_busybox().await
}

/// A Docker container: a pod of its own with one container. Its pinned netns exists, so
/// an engine opened again finds the pod ready (as after a berthd restart, no reboot).
pub async fn single(engine: &Arc<Engine>, name: &str, args: &[&str], p: RestartPolicy) -> Single {
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
pub async fn until(
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

pub async fn remove_all(env: &Env, engine: &Engine) {
    for p in engine.list_pods() {
        engine.remove_pod(&p.id).await.unwrap();
    }
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}
