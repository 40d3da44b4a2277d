//! Image store: OCI distribution client, content store by digest, layer unpack, GC.
//!
//! berthd opens it with [`Store::open`] and uses it through
//! [`berth_core::image::ImageStore`].

mod archive_load;
mod archive_save;
mod changes;
mod commit;
mod content;
mod dirtar;
mod durable;
mod error;
mod gc;
mod inflight;
mod layer;
mod local_image;
pub mod manifest;
pub mod platform;
mod pull;
mod push;
mod records;
pub mod registry;
mod snapshot;
mod store;
pub mod unpack;
mod usage;

pub use dirtar::{Whiteouts, write_tree};
pub use snapshot::chain_ids;
pub use store::Store;
