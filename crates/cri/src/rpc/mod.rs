//! One file per RPC. Each exposes `handle`, taking the shared state and the request message.

pub mod convert;
pub mod image_fs_info;
pub mod image_status;
pub mod list_images;
pub mod list_pod_sandbox;
pub mod pod_sandbox_status;
pub mod pull_image;
pub mod remove_image;
pub mod remove_pod_sandbox;
pub mod run_pod_sandbox;
pub mod runtime_config;
pub mod status;
pub mod stop_pod_sandbox;
pub mod update_runtime_config;
pub mod version;
