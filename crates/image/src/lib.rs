//! Image store: OCI distribution client, content store by digest, layer unpack, GC.
//!
//! berthd opens it with [`Store::open`] and uses it through
//! [`berth_core::image::ImageStore`].

mod content;
mod durable;
mod error;
mod gc;
mod inflight;
pub mod manifest;
pub mod platform;
mod pull;
mod records;
pub mod registry;
mod snapshot;
mod store;
pub mod unpack;
mod usage;

pub use snapshot::chain_ids;
pub use store::Store;
