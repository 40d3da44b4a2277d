//! Generated gRPC code only. CRI `runtime.v1` comes from the `k8s-cri` crate; berth's own
//! extension API (`proto/berth/v1`) joins here when the CLI needs it.

pub use k8s_cri::v1 as cri;
