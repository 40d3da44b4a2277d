//! `ImageFsInfo`: real byte and inode usage of the image store.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::cri::{
    FilesystemIdentifier, FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse, UInt64Value,
};
use tonic::Status;

use crate::Cri;
use crate::error::image_error_status;

pub fn handle(cri: &Cri, _req: ImageFsInfoRequest) -> Result<ImageFsInfoResponse, Status> {
    let usage = cri.engine.images.fs_usage().map_err(image_error_status)?;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default();
    let fs = FilesystemUsage {
        timestamp,
        fs_id: Some(FilesystemIdentifier {
            mountpoint: cri.engine.images.root().display().to_string(),
        }),
        used_bytes: Some(UInt64Value {
            value: usage.used_bytes,
        }),
        inodes_used: Some(UInt64Value {
            value: usage.inodes_used,
        }),
    };
    Ok(ImageFsInfoResponse {
        image_filesystems: vec![fs],
        container_filesystems: Vec::new(),
    })
}
