//! Pod sandboxes: records and their state machine, the pure pieces of pod setup (IPAM,
//! sysctl rules, pod files, cgroup names) and the ports the OS edge implements.

pub mod cgroup;
pub mod files;
pub mod ipam;
pub mod networks;
pub mod ports;
pub mod record;
pub mod sysctl;
pub mod userns;

pub use record::{NamespaceMode, PodRecord, PodState};
