//! CRI pod messages ↔ berth pod records.

pub mod convert;
