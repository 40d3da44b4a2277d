//! Component tests of Exec, Attach and PortForward: validation, and what they register with
//! the streaming service (a fake here; the server has its own tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_api::cri::*;
use berth_core::stream::StreamRequest;
use tonic::Code;
use tonic::transport::Channel;

type Rt = RuntimeServiceClient<Channel>;

async fn running_container(
    env: &common::Env,
    c: &mut Rt,
    tty: bool,
    stdin: bool,
) -> (String, String) {
    let (mut _c2, mut i) = env.clients(None).await;
    i.pull_image(PullImageRequest {
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let pcfg = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-p".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        ..Default::default()
    };
    let pod = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pcfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let id = c
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "c".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "1000".into()],
                tty,
                stdin,
                ..Default::default()
            }),
            sandbox_config: Some(pcfg),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    (pod, id)
}

fn exec_req(id: &str) -> ExecRequest {
    ExecRequest {
        container_id: id.into(),
        cmd: vec!["sh".into()],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
    }
}

#[tokio::test]
async fn exec_validates_and_registers() {
    let env = common::Env::new();
    let (mut c, _) = env.clients(None).await;
    let (_pod, id) = running_container(&env, &mut c, false, false).await;

    // Created, not running yet.
    let e = c.exec(exec_req(&id)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    c.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();

    let url = c.exec(exec_req(&id)).await.unwrap().into_inner().url;
    assert_eq!(url, "http://streams.test/1");
    match &env.streams.registered.lock().unwrap()[0] {
        StreamRequest::Exec { req, .. } => {
            assert_eq!(req.container_id, id);
            assert_eq!(req.process["args"], serde_json::json!(["sh"]));
            assert_eq!(req.process["terminal"], serde_json::json!(false));
            assert!(req.stdin && req.stdout && req.stderr && !req.tty);
        }
        other => panic!("registered {other:?}"),
    }

    let mut bad = exec_req(&id);
    bad.tty = true;
    let e = c.exec(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("tty and stderr"), "{}", e.message());

    let mut bad = exec_req(&id);
    (bad.stdin, bad.stdout, bad.stderr) = (false, false, false);
    let e = c.exec(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("one of stdin, stdout, or stderr"));

    let mut bad = exec_req(&id);
    bad.cmd.clear();
    assert_eq!(c.exec(bad).await.unwrap_err().code(), Code::InvalidArgument);

    let e = c.exec(exec_req("nope")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // A tty exec gets a terminal process.
    let mut tty = exec_req(&id);
    (tty.tty, tty.stderr) = (true, false);
    c.exec(tty).await.unwrap();
    match &env.streams.registered.lock().unwrap()[1] {
        StreamRequest::Exec { req, .. } => {
            assert_eq!(req.process["terminal"], serde_json::json!(true))
        }
        other => panic!("registered {other:?}"),
    }
}

#[tokio::test]
async fn attach_follows_the_container_config() {
    let env = common::Env::new();
    let (mut c, _) = env.clients(None).await;
    let (_pod, id) = running_container(&env, &mut c, true, false).await;
    c.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    let req = |stdin: bool| AttachRequest {
        container_id: id.clone(),
        stdin,
        tty: true,
        stdout: true,
        stderr: false,
    };
    // No stdin pipe was asked for at create time.
    let e = c.attach(req(true)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("stdin"), "{}", e.message());
    c.attach(req(false)).await.unwrap();
    match &env.streams.registered.lock().unwrap()[0] {
        StreamRequest::Attach { req, .. } => {
            assert!(req.tty && req.stdout && !req.stderr && !req.stdin)
        }
        other => panic!("registered {other:?}"),
    }
}

#[tokio::test]
async fn port_forward_needs_a_ready_pod() {
    let env = common::Env::new();
    let (mut c, _) = env.clients(None).await;
    let (pod, _id) = running_container(&env, &mut c, false, false).await;
    let req = |pod: &str, port: Vec<i32>| PortForwardRequest {
        pod_sandbox_id: pod.into(),
        port,
    };
    c.port_forward(req(&pod, vec![80])).await.unwrap();
    assert!(matches!(
        env.streams.registered.lock().unwrap()[0],
        StreamRequest::PortForward { .. }
    ));
    let e = c.port_forward(req(&pod, vec![0])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c.port_forward(req("nope", vec![])).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    let e = c.port_forward(req(&pod, vec![])).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}
