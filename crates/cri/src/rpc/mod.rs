//! One file per RPC. Each exposes `handle`, taking the shared state and the request message.

pub mod container_status;
pub mod convert;
pub mod create_container;
pub mod exec_sync;
pub mod image_fs_info;
pub mod image_status;
pub mod list_containers;
pub mod list_images;
pub mod list_pod_sandbox;
pub mod pod_sandbox_status;
pub mod pull_image;
pub mod remove_container;
pub mod remove_image;
pub mod remove_pod_sandbox;
pub mod reopen_container_log;
pub mod run_pod_sandbox;
pub mod runtime_config;
pub mod start_container;
pub mod status;
pub mod stop_container;
pub mod stop_pod_sandbox;
pub mod update_container_resources;
pub mod update_runtime_config;
pub mod version;
