//! ImageService dispatch table: one line per RPC.

use berth_api::cri::image_service_server::ImageService;
use berth_api::cri::*;
use tonic::{Request, Response, Status};

use crate::{ImageSvc, rpc};

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ImageService for ImageSvc {
    async fn list_images(&self, r: Request<ListImagesRequest>) -> R<ListImagesResponse> {
        rpc::list_images::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn image_status(&self, r: Request<ImageStatusRequest>) -> R<ImageStatusResponse> {
        rpc::image_status::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn pull_image(&self, r: Request<PullImageRequest>) -> R<PullImageResponse> {
        rpc::pull_image::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn remove_image(&self, r: Request<RemoveImageRequest>) -> R<RemoveImageResponse> {
        rpc::remove_image::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn image_fs_info(&self, r: Request<ImageFsInfoRequest>) -> R<ImageFsInfoResponse> {
        rpc::image_fs_info::handle(&self.0, r.into_inner()).map(Response::new)
    }
}
