//! The listeners berthd serves the CRI on.

pub mod authority;
pub mod fixed_stream;
pub mod tcp;
pub mod unix;
