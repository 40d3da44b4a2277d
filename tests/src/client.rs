//! Thin helpers over the CRI ImageService client, shared by tests and benches.

use serde_json::Value;
use tonic::Status;
use tonic::transport::Channel;

use crate::cri::image_service_client::ImageServiceClient;
use crate::cri::{
    AuthConfig, Image, ImageFilter, ImageFsInfoRequest, ImageFsInfoResponse, ImageSpec,
    ImageStatusRequest, ImageStatusResponse, ListImagesRequest, PullImageRequest,
    RemoveImageRequest,
};

pub type Images = ImageServiceClient<Channel>;

pub fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

/// Basic-auth credentials for a pull.
pub fn auth(server: &str, user: &str, password: &str) -> AuthConfig {
    AuthConfig {
        username: user.into(),
        password: password.into(),
        server_address: server.into(),
        ..Default::default()
    }
}

/// PullImage; returns the image ref (id) berthd answers.
pub async fn pull(c: &mut Images, image: &str, auth: Option<AuthConfig>) -> Result<String, Status> {
    let req = PullImageRequest {
        image: spec(image),
        auth,
        sandbox_config: None,
    };
    Ok(c.pull_image(req).await?.into_inner().image_ref)
}

pub async fn status(
    c: &mut Images,
    image: &str,
    verbose: bool,
) -> Result<ImageStatusResponse, Status> {
    let req = ImageStatusRequest {
        image: spec(image),
        verbose,
    };
    Ok(c.image_status(req).await?.into_inner())
}

/// The image, if berthd knows it.
pub async fn find(c: &mut Images, image: &str) -> Result<Option<Image>, Status> {
    Ok(status(c, image, false).await?.image)
}

/// The parsed `info` JSON of a verbose ImageStatus.
pub fn verbose_info(resp: &ImageStatusResponse) -> Option<Value> {
    resp.info
        .get("info")
        .and_then(|s| serde_json::from_str(s).ok())
}

pub async fn list(c: &mut Images, filter: Option<&str>) -> Result<Vec<Image>, Status> {
    let req = ListImagesRequest {
        filter: filter.map(|f| ImageFilter { image: spec(f) }),
    };
    Ok(c.list_images(req).await?.into_inner().images)
}

pub async fn remove(c: &mut Images, image: &str) -> Result<(), Status> {
    c.remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    Ok(())
}

pub async fn fs_info(c: &mut Images) -> Result<ImageFsInfoResponse, Status> {
    Ok(c.image_fs_info(ImageFsInfoRequest {}).await?.into_inner())
}
