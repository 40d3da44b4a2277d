//! One file per RPC. Each exposes `handle`, taking the shared state and the request message.

pub mod convert;
pub mod image_fs_info;
pub mod image_status;
pub mod list_images;
pub mod pull_image;
pub mod remove_image;
pub mod runtime_config;
pub mod status;
pub mod version;
