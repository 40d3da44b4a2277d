//! Pod networking: the built-in bridge network (`BridgeNetwork`: netlink for links,
//! addresses and routes, nftables for NAT and published ports, persistent IPAM; besides
//! the default bridge, named networks, each a `Segment` of its own) and the CNI
//! alternative (`CniNetwork`: runs the plugins configured in a CNI config directory).

mod bridge;
mod bridge_admin;
mod cni;
mod hostports;
mod named;
mod netlink;
mod nft;
mod segment;
mod state;
mod sysctl;

pub use bridge::{BridgeNetwork, host_veth_name};
pub use cni::CniNetwork;
pub use segment::NAMED_BRIDGE_PREFIX;
