//! Helpers of the docker_* tests (included with `#[path]`): a Docker container on the
//! fake ports is a pod of its own with one container that has a restart policy.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::container::ContainerConfig;
use berth_core::container::record::ContainerRecord;
use berth_core::image::ImageStore;
use berth_core::pod::record::{DnsConfig, NamespaceMode, NamespaceModes};
pub use berth_engine::testing::Env;
use berth_engine::{ContainerSpec, Engine, PodSpec, RestartPolicy, Single};

pub fn pod(name: &str) -> PodSpec {
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

pub fn container(name: &str, args: &[&str], restart: Option<RestartPolicy>) -> ContainerSpec {
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

pub async fn engine(env: &Env) -> Arc<Engine> {
    env.store
        .pull(&"busybox:latest".parse().unwrap(), None)
        .await
        .unwrap();
    env.engine(None).await
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
