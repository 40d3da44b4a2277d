//! What the crate's unit tests share: a request, a body as JSON, and the API over a real
//! engine on fake ports with busybox pulled, whose `docker cp` is never used.

use std::sync::Arc;

use berth_core::Reference;
use berth_core::image::ImageStore;
use berth_engine::testing::Env;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use crate::http::Reply;
use crate::query::Query;
use crate::router::Call;
use crate::{DockerApi, EngineInfo};

pub fn call(method: Method, path: &str, query: &str) -> Call {
    Call {
        method,
        path: path.to_string(),
        query: Query::parse(Some(query)),
        headers: HeaderMap::new(),
        upgrade: Default::default(),
    }
}

pub async fn body_json(r: Reply) -> serde_json::Value {
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// The API over `env`'s engine, its root (volumes) in `env`'s directory.
pub async fn api(env: &Env) -> Arc<DockerApi> {
    let engine = env.engine(None).await;
    let r: Reference = "busybox".parse().unwrap();
    env.store.pull(&r, None).await.unwrap();
    DockerApi::new(
        env.store.clone(),
        EngineInfo {
            root_dir: env.dir.path().display().to_string(),
            ..Default::default()
        },
        engine,
        env.dir.path().join("logs"),
        Arc::new(NoFiles),
    )
}

/// `docker cp` is tested end to end (tests/tests/docker_cp.rs); these tests never copy.
pub struct NoFiles;

impl berth_core::files::ContainerFiles for NoFiles {
    fn stat(
        &self,
        _: &berth_core::files::FsView,
        p: &str,
    ) -> Result<berth_core::files::PathStat, berth_core::files::FilesError> {
        Err(berth_core::files::FilesError::NotFound(p.into()))
    }
    fn archive(
        &self,
        _: &berth_core::files::FsView,
        p: &str,
        _: &mut dyn std::io::Write,
    ) -> Result<berth_core::files::PathStat, berth_core::files::FilesError> {
        Err(berth_core::files::FilesError::NotFound(p.into()))
    }
    fn extract(
        &self,
        _: &berth_core::files::FsView,
        p: &str,
        _: &mut dyn std::io::Read,
        _: berth_core::files::ExtractOptions,
    ) -> Result<(), berth_core::files::FilesError> {
        Err(berth_core::files::FilesError::NotFound(p.into()))
    }
}
