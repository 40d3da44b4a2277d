//! The push side of the distribution API: a blob's presence checked by HEAD, a blob
//! uploaded monolithically (POST to open an upload session, PUT of the bytes with the
//! digest to close it), and a manifest PUT under its tag. Pushes go to the registry
//! itself, never to a mirror.

use berth_core::Digest;
use berth_core::image::ImageError;
use reqwest::{Method, StatusCode};

use super::response::body_message;
use super::{Payload, Request, Session};
use crate::registry::endpoint::Endpoint;

impl Session {
    /// The endpoint pushes go to: the registry (the last endpoint, after any mirrors).
    pub fn upstream(&self) -> Result<&Endpoint, ImageError> {
        self.endpoints.last().ok_or_else(|| ImageError::Registry {
            registry: self.registry.clone(),
            message: "no endpoint to push to".into(),
        })
    }

    fn push_request<'a>(
        method: Method,
        path: &'a str,
        content_type: Option<&'a str>,
        body: Option<Payload>,
    ) -> Request<'a> {
        Request {
            method,
            path,
            accept: None,
            content_type,
            body,
            push: true,
        }
    }

    fn failed(&self, ep: &Endpoint, what: &str, status: StatusCode, body: &[u8]) -> ImageError {
        let message = format!(
            "{what}: the registry answered {status}: {}",
            body_message(body)
        );
        if status == StatusCode::FORBIDDEN {
            ImageError::Unauthorized {
                registry: ep.describe(),
                message,
            }
        } else {
            ImageError::Registry {
                registry: ep.describe(),
                message,
            }
        }
    }

    /// True when the repository already has the blob.
    pub async fn blob_exists(&self, ep: &Endpoint, digest: &Digest) -> Result<bool, ImageError> {
        let path = format!("/v2/{}/blobs/{digest}", self.repo);
        let what = format!("checking blob {digest}");
        let req = Self::push_request(Method::HEAD, &path, None, None);
        let (resp, _) = self.send(ep, &req, &what).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.failed(ep, &what, s, &[])),
        }
    }

    /// Uploads a blob (streamed from `path`, `len` bytes) in one PUT.
    pub async fn upload_blob(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        path: &std::path::Path,
        len: u64,
    ) -> Result<(), ImageError> {
        let what = format!("uploading blob {digest}");
        let uploads = format!("/v2/{}/blobs/uploads/", self.repo);
        let req = Self::push_request(Method::POST, &uploads, None, None);
        let (resp, url) = self.send(ep, &req, &what).await?;
        if resp.status() != StatusCode::ACCEPTED {
            let s = resp.status();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.failed(ep, &what, s, &body));
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ImageError::Registry {
                registry: ep.describe(),
                message: format!("{what}: the upload was opened without a Location"),
            })?;
        let mut target = reqwest::Url::parse(&url)
            .and_then(|u| u.join(location))
            .map_err(|e| ImageError::Registry {
                registry: ep.describe(),
                message: format!("{what}: bad upload Location {location:?}: {e}"),
            })?;
        target
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let target = target.to_string();
        let req = Self::push_request(
            Method::PUT,
            &target,
            Some("application/octet-stream"),
            Some(Payload::File {
                path: path.to_path_buf(),
                len,
            }),
        );
        let (resp, _) = self.send(ep, &req, &what).await?;
        let s = resp.status();
        if s != StatusCode::CREATED && !s.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.failed(ep, &what, s, &body));
        }
        Ok(())
    }

    /// PUTs a manifest under `tag`.
    pub async fn put_manifest(
        &self,
        ep: &Endpoint,
        tag: &str,
        media_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<(), ImageError> {
        let what = format!(
            "pushing the manifest of {}/{}:{tag}",
            self.registry, self.repo
        );
        let path = format!("/v2/{}/manifests/{tag}", self.repo);
        let req = Self::push_request(
            Method::PUT,
            &path,
            Some(media_type),
            Some(Payload::Bytes(bytes)),
        );
        let (resp, _) = self.send(ep, &req, &what).await?;
        let s = resp.status();
        if !s.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.failed(ep, &what, s, &body));
        }
        Ok(())
    }
}
