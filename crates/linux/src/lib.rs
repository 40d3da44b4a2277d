//! The OS edge. The only crate allowed `unsafe`.
