//! The engine's fakes (`berth_engine::testing`) behind real tonic services over an
//! in-memory channel.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::ops::Deref;
use std::sync::Arc;

use berth_api::cri::image_service_client::ImageServiceClient;
use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_cri::Cri;
pub use berth_engine::testing::*;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Server};

/// The engine's test environment, with the CRI on top.
#[derive(Default)]
pub struct Env(pub berth_engine::testing::Env);

impl Deref for Env {
    type Target = berth_engine::testing::Env;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Env {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn cri(&self, fault: Option<&str>) -> Arc<Cri> {
        Cri::new(self.engine(fault).await)
    }

    pub async fn clients(
        &self,
        fault: Option<&str>,
    ) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
        serve(self.cri(fault).await).await
    }
}

pub async fn serve(cri: Arc<Cri>) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
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
