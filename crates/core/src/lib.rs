//! berth's pure core: no I/O, no async runtime. Everything here is data, parsing,
//! validation and the narrow traits ("ports") that the OS and registry edges implement.

pub mod config;
pub mod container;
pub mod digest;
pub mod files;
pub mod handler_features;
pub mod image;
pub mod pod;
pub mod reference;
pub mod runtime;
pub mod stats;
pub mod stream;

pub use digest::Digest;
pub use reference::Reference;
