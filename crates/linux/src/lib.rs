//! The OS edge: namespaces, mounts, cgroups, netlink, nftables, processes.
//! The only crate allowed `unsafe`; every block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod cgroup;
pub mod containers;
pub mod features;
pub mod files;
pub mod monitor;
pub mod mount_api;
pub mod net;
pub mod ns;
pub mod podfiles;
pub mod portforward;
pub mod pty;
pub mod rootfs;
pub mod runtime;
pub mod sessions;
pub mod sockpath;
pub mod stats;
