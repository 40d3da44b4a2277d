//! CRI container messages ↔ berth container configs and records.

pub mod convert;
