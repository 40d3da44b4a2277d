//! Component tests of the container RPCs with a fake runtime and rootfs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use berth_api::cri::image_service_client::ImageServiceClient;
use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_api::cri::*;
use tonic::Code;
use tonic::transport::Channel;

type Rt = RuntimeServiceClient<Channel>;

async fn pod(c: &mut Rt, name: &str, log_dir: &str) -> (String, PodSandboxConfig) {
    let cfg = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: log_dir.into(),
        ..Default::default()
    };
    let id = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    (id, cfg)
}

async fn pull(i: &mut ImageServiceClient<Channel>) {
    i.pull_image(PullImageRequest {
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
}

fn ctr(name: &str, cmd: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("tier".to_string(), name.to_string())]),
        ..Default::default()
    }
}

async fn create(
    c: &mut Rt,
    pod_id: &str,
    pcfg: &PodSandboxConfig,
    cfg: ContainerConfig,
) -> Result<String, tonic::Status> {
    c.create_container(CreateContainerRequest {
        pod_sandbox_id: pod_id.into(),
        config: Some(cfg),
        sandbox_config: Some(pcfg.clone()),
    })
    .await
    .map(|r| r.into_inner().container_id)
}

async fn status(c: &mut Rt, id: &str) -> ContainerStatus {
    c.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: true,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
}

#[tokio::test]
async fn container_lifecycle() {
    let env = common::Env::new();
    let (mut c, mut i) = env.clients(None).await;
    let logs = env.dir.path().join("logs");
    let (pod_id, pcfg) = pod(&mut c, "web", logs.to_str().unwrap()).await;

    // The image must be present first.
    let e = create(&mut c, &pod_id, &pcfg, ctr("app", &["sleep", "1000"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("pull it first"), "{}", e.message());
    pull(&mut i).await;

    let id = create(&mut c, &pod_id, &pcfg, ctr("app", &["sleep", "1000"]))
        .await
        .unwrap();
    let s = status(&mut c, &id).await;
    assert_eq!(s.state, ContainerState::ContainerCreated as i32);
    assert_eq!(s.log_path, logs.join("app/0.log").display().to_string());
    assert!(logs.join("app").is_dir(), "the log directory is created");
    // The spec berth wrote is in the bundle.
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            env.config()
                .root_dir
                .join("containers")
                .join(&id)
                .join("config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        spec["process"]["args"],
        serde_json::json!(["sleep", "1000"])
    );

    // Name taken.
    let e = create(&mut c, &pod_id, &pcfg, ctr("app", &["sleep", "1"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains(&id));

    c.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerRunning as i32
    );
    let e = c
        .start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    let out = c
        .exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["echo".into(), "hi".into()],
            timeout: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.stdout, b"echo hi");

    c.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(env.runtime.updates.lock().unwrap().len(), 1);
    let s = status(&mut c, &id).await;
    assert_eq!(
        s.resources.unwrap().linux.unwrap().memory_limit_in_bytes,
        64 << 20
    );

    let list = |f: ContainerFilter| ListContainersRequest { filter: Some(f) };
    let running = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        c.list_containers(list(running.clone()))
            .await
            .unwrap()
            .into_inner()
            .containers
            .len(),
        1
    );
    let by_pod = ContainerFilter {
        pod_sandbox_id: pod_id[..10].to_string(),
        ..Default::default()
    };
    assert_eq!(
        c.list_containers(list(by_pod))
            .await
            .unwrap()
            .into_inner()
            .containers
            .len(),
        1
    );

    c.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 2,
    })
    .await
    .unwrap();
    let s = status(&mut c, &id).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 128 + 15);
    assert_eq!(s.reason, "Error");
    c.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 2,
    })
    .await
    .unwrap();
    assert!(
        c.list_containers(list(running))
            .await
            .unwrap()
            .into_inner()
            .containers
            .is_empty()
    );

    c.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    c.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    let e = c
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(!env.ledger.held().iter().any(|h| h.starts_with("rootfs:")));
}

#[tokio::test]
async fn exits_start_errors_and_pod_cascades() {
    let env = common::Env::new();
    let (mut c, mut i) = env.clients(None).await;
    pull(&mut i).await;
    let (pod_id, pcfg) = pod(&mut c, "job", "").await;

    // A program that ends by itself: Completed / Error, seen through status.
    let ok = create(&mut c, &pod_id, &pcfg, ctr("ok", &["true"]))
        .await
        .unwrap();
    c.start_container(StartContainerRequest {
        container_id: ok.clone(),
    })
    .await
    .unwrap();
    let s = status(&mut c, &ok).await;
    assert_eq!(
        (s.state, s.exit_code, s.reason.as_str()),
        (ContainerState::ContainerExited as i32, 0, "Completed")
    );
    let bad = create(&mut c, &pod_id, &pcfg, ctr("bad", &["false"]))
        .await
        .unwrap();
    c.start_container(StartContainerRequest {
        container_id: bad.clone(),
    })
    .await
    .unwrap();
    assert_eq!(status(&mut c, &bad).await.reason, "Error");

    // A program that cannot be exec'd.
    let missing = create(&mut c, &pod_id, &pcfg, ctr("missing", &["missing"]))
        .await
        .unwrap();
    let e = c
        .start_container(StartContainerRequest {
            container_id: missing.clone(),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("missing"), "{}", e.message());
    assert_eq!(status(&mut c, &missing).await.reason, "StartError");

    // No command at all: the image (fake) has none either.
    let e = create(&mut c, &pod_id, &pcfg, ctr("nocmd", &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("no command"), "{}", e.message());

    let long = create(&mut c, &pod_id, &pcfg, ctr("long", &["sleep", "9"]))
        .await
        .unwrap();
    c.start_container(StartContainerRequest {
        container_id: long.clone(),
    })
    .await
    .unwrap();
    // Stopping the pod stops its containers; removing it removes them and the monitor.
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        status(&mut c, &long).await.state,
        ContainerState::ContainerExited as i32
    );
    let e = create(&mut c, &pod_id, &pcfg, ctr("late", &["sleep", "1"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    c.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    assert!(
        c.list_containers(ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers
            .is_empty()
    );
    assert_eq!(
        env.runtime.released_pods.lock().unwrap().as_slice(),
        &[pod_id]
    );
    assert!(env.ledger.held().is_empty(), "{:?}", env.ledger.held());
}

#[tokio::test]
async fn containers_survive_restart_and_exits_meanwhile_are_reported() {
    let env = common::Env::new();
    let (id, pod_id) = {
        let (mut c, mut i) = env.clients(None).await;
        pull(&mut i).await;
        let (pod_id, pcfg) = pod(&mut c, "svc", "").await;
        let id = create(&mut c, &pod_id, &pcfg, ctr("app", &["sleep", "1000"]))
            .await
            .unwrap();
        c.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        (id, pod_id)
    };
    // While "berthd is down", the process exits with 3.
    {
        let mut procs = env.runtime.procs.lock().unwrap();
        let st = procs.get_mut(&id).unwrap();
        st.status = berth_core::runtime::ProcessStatus::Exited;
        st.exit_code = Some(3);
        st.finished_at = Some(99);
    }
    let pin = env.config().run_dir.join("pods").join(&pod_id).join("ns");
    std::fs::create_dir_all(&pin).unwrap();
    std::fs::write(pin.join("net"), "").unwrap();
    let (mut c, _) = env.clients(None).await;
    let s = status(&mut c, &id).await;
    assert_eq!(
        (s.state, s.exit_code, s.finished_at),
        (ContainerState::ContainerExited as i32, 3, 99)
    );
}
