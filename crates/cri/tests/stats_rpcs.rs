//! Component tests of the stats and events RPCs with fake ports: rates between samples,
//! well-formed answers for created containers, filters, and a subscriber that never reads
//! does not hold up the RPCs that publish events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_api::cri::*;
use tonic::transport::Channel;

type Rt = RuntimeServiceClient<Channel>;

async fn pod(c: &mut Rt, name: &str) -> (String, PodSandboxConfig) {
    let cfg = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
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

#[tokio::test]
async fn container_stats_rates_and_filters() {
    let env = common::Env::new();
    let (mut c, mut i) = env.clients(None).await;
    i.pull_image(PullImageRequest {
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let (pod_id, pcfg) = pod(&mut c, "web").await;
    let id = c
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "100".into()],
                labels: [("tier".to_string(), "front".to_string())].into(),
                ..Default::default()
            }),
            sandbox_config: Some(pcfg),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    let get = |c: &mut Rt| {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            c.container_stats(ContainerStatsRequest { container_id: id })
                .await
                .unwrap()
                .into_inner()
                .stats
                .unwrap()
        }
    };
    let a = get(&mut c).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = get(&mut c).await;
    let (ca, cb) = (a.cpu.unwrap(), b.cpu.unwrap());
    assert!(ca.timestamp > 0 && cb.timestamp > ca.timestamp);
    // The fake adds one CPU second per read: far more than one core over 50 ms.
    assert!(cb.usage_nano_cores.unwrap().value > 1_000_000_000, "{cb:?}");
    let fs = b.writable_layer.unwrap();
    assert_eq!(fs.used_bytes.unwrap().value, 4096);
    assert!(fs.fs_id.unwrap().mountpoint.ends_with("containers"));

    let list = |f: ContainerStatsFilter| {
        let mut c = c.clone();
        async move {
            c.list_container_stats(ListContainerStatsRequest { filter: Some(f) })
                .await
                .unwrap()
                .into_inner()
                .stats
                .len()
        }
    };
    let f = |id: &str, pod: &str, tier: &str| ContainerStatsFilter {
        id: id.into(),
        pod_sandbox_id: pod.into(),
        label_selector: if tier.is_empty() {
            Default::default()
        } else {
            [("tier".to_string(), tier.to_string())].into()
        },
    };
    assert_eq!(list(f(&id[..6], "", "")).await, 1);
    assert_eq!(list(f("", &pod_id[..6], "front")).await, 1);
    assert_eq!(list(f("", "", "back")).await, 0);
    assert_eq!(list(f("nope", "", "")).await, 0);

    let p = c
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(p.linux.unwrap().containers.len(), 1);
    let e = c
        .container_stats(ContainerStatsRequest {
            container_id: "missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_stall_rpcs() {
    let env = common::Env::new();
    let (mut c, _i) = env.clients(None).await;
    let mut idle = c
        .get_container_events(GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    // Two events per pod, none read while they are made.
    let n = 300;
    let made = tokio::time::timeout(Duration::from_secs(120), async {
        for k in 0..n {
            pod(&mut c, &format!("p{k}")).await;
        }
    })
    .await;
    assert!(
        made.is_ok(),
        "RunPodSandbox stalled behind an idle subscriber"
    );
    // The subscriber still gets events, up to the newest (what a slow subscriber loses is
    // checked in get_container_events' unit tests: here the HTTP/2 windows absorb it all).
    let mut last = None;
    while let Ok(Some(Ok(ev))) = tokio::time::timeout(Duration::from_millis(500), idle.message())
        .await
        .map(|m| m.transpose())
    {
        last = Some(ev.pod_sandbox_status.unwrap().metadata.unwrap().name);
    }
    assert_eq!(last, Some(format!("p{}", n - 1)));
}
