//! Component tests of the pod RPCs with fake ports: rollback at every step, idempotency,
//! retries, name conflicts, filters, recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use berth_api::cri::*;
use tonic::Code;

fn pod_config(name: &str, attempt: u32) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt,
        }),
        hostname: name.into(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        port_mappings: vec![PortMapping {
            protocol: 0,
            container_port: 80,
            host_port: 8080,
            host_ip: String::new(),
        }],
        ..Default::default()
    }
}

fn run(cfg: PodSandboxConfig) -> RunPodSandboxRequest {
    RunPodSandboxRequest {
        config: Some(cfg),
        runtime_handler: String::new(),
    }
}

#[tokio::test]
async fn run_status_list_stop_remove() {
    let env = common::Env::new();
    let (mut c, _) = env.clients(None).await;
    let id = c
        .run_pod_sandbox(run(pod_config("web", 0)))
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    assert_eq!(id.len(), 64);
    // cgroup, init leaf cgroup, namespaces, files, network.
    assert_eq!(env.ledger.held().len(), 5, "{:?}", env.ledger.held());

    let st = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id[..12].to_string(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let s = st.status.unwrap();
    assert_eq!(s.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(s.network.unwrap().ip, "10.88.0.2");
    assert_eq!(s.metadata.unwrap().name, "web");
    assert!(st.info["info"].contains("portMappings"));

    let list = |f: PodSandboxFilter| ListPodSandboxRequest { filter: Some(f) };
    let n = c
        .list_pod_sandbox(list(PodSandboxFilter::default()))
        .await
        .unwrap()
        .into_inner()
        .items
        .len();
    assert_eq!(n, 1);
    let sel = PodSandboxFilter {
        label_selector: HashMap::from([("app".to_string(), "other".to_string())]),
        ..Default::default()
    };
    assert!(
        c.list_pod_sandbox(list(sel))
            .await
            .unwrap()
            .into_inner()
            .items
            .is_empty()
    );
    let notready = PodSandboxFilter {
        state: Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxNotready as i32,
        }),
        ..Default::default()
    };
    assert!(
        c.list_pod_sandbox(list(notready.clone()))
            .await
            .unwrap()
            .into_inner()
            .items
            .is_empty()
    );

    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        c.list_pod_sandbox(list(notready))
            .await
            .unwrap()
            .into_inner()
            .items
            .len(),
        1
    );
    assert!(
        !env.ledger.held().iter().any(|h| h.starts_with("net:")),
        "stop tears down the network"
    );

    c.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    c.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
    let e = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id,
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn a_failure_after_any_step_leaves_nothing() {
    for step in [
        "cgroup",
        "namespaces",
        "sysctls",
        "files",
        "network",
        "record",
    ] {
        let env = common::Env::new();
        let (mut c, _) = env.clients(Some(step)).await;
        let e = c
            .run_pod_sandbox(run(pod_config("web", 0)))
            .await
            .unwrap_err();
        assert!(e.message().contains(step), "{step}: {}", e.message());
        assert!(
            env.ledger.held().is_empty(),
            "{step}: {:?}",
            env.ledger.held()
        );
        let items = c
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(items.is_empty(), "{step}");
        assert!(
            env.ledger
                .ipam
                .lock()
                .unwrap()
                .as_ref()
                .is_none_or(|a| a.held.is_empty()),
            "{step}: IP leaked"
        );
    }
    // A port failing on its own is undone the same way.
    for port in ["cgroup", "ns", "files", "net"] {
        let env = common::Env::new();
        *env.ledger.fail.lock().unwrap() = Some(port);
        let (mut c, _) = env.clients(None).await;
        c.run_pod_sandbox(run(pod_config("web", 0)))
            .await
            .unwrap_err();
        assert!(
            env.ledger.held().is_empty(),
            "{port}: {:?}",
            env.ledger.held()
        );
    }
}

#[tokio::test]
async fn names_retries_and_bad_input() {
    let env = common::Env::new();
    let (mut c, _) = env.clients(None).await;
    let id = c
        .run_pod_sandbox(run(pod_config("web", 0)))
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    // The same request again, its first answer delivered: the name is in use.
    let e = c
        .run_pod_sandbox(run(pod_config("web", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains(&id), "{}", e.message());
    // The same name with another config is refused, naming the pod that has it.
    let mut other = pod_config("web", 0);
    other.hostname = "different".into();
    let e = c.run_pod_sandbox(run(other)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains(&id), "{}", e.message());
    // Another attempt is another pod.
    let id2 = c
        .run_pod_sandbox(run(pod_config("web", 1)))
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    assert_ne!(id2, id);

    let bad = |f: fn(&mut PodSandboxConfig)| {
        let mut cfg = pod_config("bad", 0);
        f(&mut cfg);
        run(cfg)
    };
    let cases: Vec<(RunPodSandboxRequest, &str)> = vec![
        (bad(|c| c.metadata = None), "metadata"),
        (bad(|c| c.hostname = "no spaces".into()), "hostname"),
        (bad(|c| c.port_mappings[0].host_port = 70000), "70000"),
        (
            bad(|c| {
                c.linux = Some(LinuxPodSandboxConfig {
                    sysctls: HashMap::from([("vm.swappiness".to_string(), "1".to_string())]),
                    ..Default::default()
                })
            }),
            "vm.swappiness",
        ),
        (
            bad(|c| {
                c.linux = Some(LinuxPodSandboxConfig {
                    sysctls: HashMap::from([("net.unknown.key".to_string(), "1".to_string())]),
                    ..Default::default()
                })
            }),
            "net.unknown.key",
        ),
        (
            RunPodSandboxRequest {
                config: Some(pod_config("h", 0)),
                runtime_handler: "kata".into(),
            },
            "kata",
        ),
    ];
    for (req, needle) in cases {
        let e = c.run_pod_sandbox(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{needle}: {}", e.message());
        assert!(e.message().contains(needle), "{needle}: {}", e.message());
    }
    assert_eq!(
        c.list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items
            .len(),
        2
    );
    // Nothing of the refused pods is held: 2 pods × 4 resources.
    assert_eq!(
        env.ledger.held().len(),
        10,
        "nothing of the refused pods is held: 2 pods x 5"
    );
}

#[tokio::test]
async fn records_survive_restart_and_half_created_pods_are_cleaned() {
    let env = common::Env::new();
    let id = {
        let (mut c, _) = env.clients(None).await;
        c.run_pod_sandbox(run(pod_config("keep", 0)))
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id
    };
    // Forge a half-created pod, as a crash mid-RunPodSandbox leaves it.
    let rec_path = env
        .config()
        .root_dir
        .join("pods")
        .join(format!("{id}.json"));
    let mut half: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rec_path).unwrap()).unwrap();
    let half_id = "f".repeat(64);
    half["id"] = half_id.clone().into();
    half["name"] = "half".into();
    half["state"] = "creating".into();
    std::fs::write(
        rec_path.with_file_name(format!("{half_id}.json")),
        half.to_string(),
    )
    .unwrap();
    env.ledger
        .held
        .lock()
        .unwrap()
        .insert(format!("ns:{half_id}"));

    // The kept pod's pinned netns is still there (the fake does not create files).
    let pin = env.config().run_dir.join("pods").join(&id).join("ns");
    std::fs::create_dir_all(&pin).unwrap();
    std::fs::write(pin.join("net"), "").unwrap();

    let (mut c, _) = env.clients(None).await;
    let items = c
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, id);
    assert_eq!(items[0].state, PodSandboxState::SandboxReady as i32);
    assert!(!env.ledger.held().contains(&format!("ns:{half_id}")));
}

#[tokio::test]
async fn update_runtime_config_changes_the_pod_cidr() {
    let env = common::Env::new();
    let (mut c, _) = env.clients(None).await;
    c.update_runtime_config(UpdateRuntimeConfigRequest {
        runtime_config: Some(RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: "10.200.0.0/24,fd00::/64".into(),
            }),
        }),
    })
    .await
    .unwrap();
    let id = c
        .run_pod_sandbox(run(pod_config("x", 0)))
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let s = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id,
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.status.unwrap().network.unwrap().ip, "10.200.0.2");
    let e = c
        .update_runtime_config(UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig {
                    pod_cidr: "nope".into(),
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}
