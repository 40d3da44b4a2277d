//! Component tests: the real tonic services over an in-memory connection, with a fake store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use berth_api::cri::image_service_client::ImageServiceClient;
use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_api::cri::*;
use common::FakeStore;
use tonic::Code;

async fn clients(
    store: Arc<FakeStore>,
) -> (
    RuntimeServiceClient<tonic::transport::Channel>,
    ImageServiceClient<tonic::transport::Channel>,
) {
    let env = common::Env::new();
    let ledger = env.ledger.clone();
    let engine = berth_engine::Engine::open(
        store,
        common::ports(&ledger),
        env.container_ports(),
        berth_engine::RuntimeInfo {
            version: "test".into(),
            config: env.config(),
            handler_features: Default::default(),
        },
        None,
    )
    .await
    .unwrap();
    let cri = berth_cri::Cri::new(engine);
    // keep the temp dir alive for the test's duration
    std::mem::forget(env);
    common::serve(cri).await
}

fn spec(s: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: s.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn pull_list_status_remove() {
    let store = Arc::new(FakeStore::default());
    let (_, mut c) = clients(store.clone()).await;
    let r = c
        .pull_image(PullImageRequest {
            image: spec("busybox"),
            auth: Some(AuthConfig {
                username: "u".into(),
                password: "p".into(),
                ..Default::default()
            }),
            sandbox_config: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.image_ref.starts_with("sha256:"));
    assert_eq!(
        store.last_auth.lock().unwrap().as_ref().unwrap().username,
        "u"
    );

    let list = c
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.images.len(), 1);
    assert_eq!(
        list.images[0].repo_tags,
        vec!["docker.io/library/busybox:latest"]
    );
    assert_eq!(list.images[0].uid.as_ref().unwrap().value, 1000);

    let st = c
        .image_status(ImageStatusRequest {
            image: spec("busybox:latest"),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.image.unwrap().id, r.image_ref);
    assert!(st.info["info"].contains("imageSpec"));

    // Absent image: empty answer, not an error (CRI contract).
    let st = c
        .image_status(ImageStatusRequest {
            image: spec("nothere"),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(st.image.is_none());

    c.remove_image(RemoveImageRequest {
        image: spec(&r.image_ref),
    })
    .await
    .unwrap();
    // Idempotent.
    c.remove_image(RemoveImageRequest {
        image: spec(&r.image_ref),
    })
    .await
    .unwrap();
    let list = c
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.images.is_empty());

    let fs = c
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fs.image_filesystems[0].used_bytes.as_ref().unwrap().value,
        4096
    );
}

#[tokio::test]
async fn bad_input_gets_the_right_code() {
    let (mut rt, mut c) = clients(Arc::new(FakeStore::default())).await;
    let e = c
        .pull_image(PullImageRequest {
            image: spec("Not/Valid"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("Not/Valid"), "{}", e.message());
    let e = c.pull_image(PullImageRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .pull_image(PullImageRequest {
            image: spec("reg.example/private"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("reg.example"), "{}", e.message());
    let e = c
        .remove_image(RemoveImageRequest { image: None })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = rt.attach(AttachRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}
