//! Pod networking: the built-in bridge network (`BridgeNetwork`: netlink for links,
//! addresses and routes, nftables for NAT and published ports, persistent IPAM) and the
//! CNI alternative (`CniNetwork`: runs the plugins configured in a CNI config directory).

mod bridge;
mod cni;
mod hostports;
mod netlink;
mod nft;
mod state;
mod sysctl;

pub use bridge::{BridgeNetwork, host_veth_name};
pub use cni::CniNetwork;
