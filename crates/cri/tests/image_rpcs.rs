//! Component tests: the real tonic services over an in-memory connection, with a fake store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_api::cri::image_service_client::ImageServiceClient;
use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_api::cri::*;
use berth_core::Digest;
use berth_core::Reference;
use berth_core::config::Config;
use berth_core::image::{FsUsage, Image, ImageError, ImageStore, RegistryAuth};
use berth_cri::{Cri, RuntimeInfo};
use hyper_util::rt::TokioIo;
use tonic::Code;
use tonic::transport::{Endpoint, Server};

#[derive(Default)]
struct FakeStore {
    images: Mutex<Vec<Image>>,
    last_auth: Mutex<Option<RegistryAuth>>,
}

fn image_for(r: &Reference) -> Image {
    Image {
        id: Digest::of(r.name().as_bytes()),
        repo_tags: r.tagged_name().into_iter().collect(),
        repo_digests: vec![],
        size: 1234,
        user: "1000:1000".into(),
        diff_ids: vec![],
        snapshots: vec![],
        config: serde_json::json!({"config": {"User": "1000:1000"}}),
        pinned: false,
    }
}

#[async_trait]
impl ImageStore for FakeStore {
    async fn pull(&self, r: &Reference, auth: Option<RegistryAuth>) -> Result<Image, ImageError> {
        *self.last_auth.lock().unwrap() = auth;
        if r.repository().ends_with("private") {
            return Err(ImageError::Unauthorized {
                registry: r.registry().into(),
                message: "authentication required".into(),
            });
        }
        let img = image_for(r);
        self.images.lock().unwrap().push(img.clone());
        Ok(img)
    }
    fn list(&self) -> Vec<Image> {
        self.images.lock().unwrap().clone()
    }
    fn find(&self, name: &str) -> Option<Image> {
        let full = name.parse::<Reference>().ok().and_then(|r| r.tagged_name());
        self.images
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.id.to_string() == name || Some(&i.repo_tags[0]) == full.as_ref())
            .cloned()
    }
    async fn remove(&self, name: &str) -> Result<(), ImageError> {
        let found = self.find(name);
        if let Some(f) = found {
            self.images.lock().unwrap().retain(|i| i.id != f.id);
        }
        Ok(())
    }
    fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        Ok(FsUsage {
            used_bytes: 4096,
            inodes_used: 3,
        })
    }
    fn root(&self) -> std::path::PathBuf {
        "/var/lib/berth/images".into()
    }
}

async fn clients(
    store: Arc<FakeStore>,
) -> (
    RuntimeServiceClient<tonic::transport::Channel>,
    ImageServiceClient<tonic::transport::Channel>,
) {
    let cri = Cri::new(
        store,
        RuntimeInfo {
            version: "test".into(),
            config: Config::default(),
        },
    );
    let (rt, img) = cri.services();
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        Server::builder()
            .add_service(rt)
            .add_service(img)
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
    });
    let mut client_io = Some(client_io);
    let ch = Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("connected once already"))
            }
        }))
        .await
        .unwrap();
    (
        RuntimeServiceClient::new(ch.clone()),
        ImageServiceClient::new(ch),
    )
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
    let e = rt
        .run_pod_sandbox(RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
}
