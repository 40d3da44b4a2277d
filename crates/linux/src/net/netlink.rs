//! rtnetlink connections (the host's, or one bound to a pod's network namespace) and the
//! few link/address/route operations pod networking needs.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

use futures::TryStreamExt;
use nix::sched::CloneFlags;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

/// An rtnetlink handle whose connection task ends with it.
pub(crate) struct Netlink {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) type NlResult<T> = Result<T, String>;

fn nl_err(what: &str, e: rtnetlink::Error) -> String {
    format!("{what}: {e}")
}

/// The kernel's errno in a netlink error, if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

impl Netlink {
    /// A connection in berthd's own (the host's) network namespace.
    pub fn host() -> io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok(Self {
            handle,
            task: tokio::spawn(conn),
        })
    }

    /// A connection to the network namespace pinned at `netns`. A netlink socket stays
    /// bound to the namespace it was created in, so a short-lived thread of our own enters
    /// the namespace, creates the socket and exits; tokio threads never change namespace.
    pub async fn in_netns(netns: &Path) -> io::Result<Self> {
        let ns = File::open(netns)?;
        let fd = tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                s.spawn(|| -> io::Result<OwnedFd> {
                    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                    let mut sock = Socket::new(NETLINK_ROUTE)?;
                    sock.bind_auto()?;
                    sock.set_non_blocking(true)?;
                    // SAFETY: into_raw_fd hands over sole ownership of a valid open socket.
                    Ok(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) })
                })
                .join()
                .map_err(|_| io::Error::other("netns socket thread panicked"))?
            })
        })
        .await
        .map_err(io::Error::other)??;
        // SAFETY: `fd` is a valid, owned, non-blocking netlink socket; ownership moves into
        // the TokioSocket (which registers it with the runtime we are running on).
        let sock = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(sock);
        Ok(Self {
            handle,
            task: tokio::spawn(conn),
        })
    }

    /// The index of link `name`, None if there is none.
    pub async fn index_of(&self, name: &str) -> NlResult<Option<u32>> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(&format!("looking up link {name}"), e)),
        }
    }

    /// Creates bridge `name` unless it exists, and brings it up. Returns its index.
    /// `mac`: its address, set at creation. Without one, a bridge takes the lowest address
    /// of its ports and changes it as veths come and go, and the pods' ARP entries for the
    /// gateway go stale for seconds (traffic to the gateway, e.g. DNS, is lost meanwhile).
    pub async fn ensure_bridge(&self, name: &str, mac: Option<[u8; 6]>) -> NlResult<u32> {
        if self.index_of(name).await?.is_none() {
            let mut msg = LinkBridge::new(name);
            if let Some(mac) = mac {
                msg = msg.address(mac.to_vec());
            }
            match self.handle.link().add(msg.build()).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(&format!("creating bridge {name}"), e)),
            }
        }
        self.set_up(name).await?;
        self.index_of(name)
            .await?
            .ok_or_else(|| format!("bridge {name} vanished right after creation"))
    }

    pub async fn set_up(&self, name: &str) -> NlResult<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_name(name).up().build())
            .execute()
            .await
            .map_err(|e| nl_err(&format!("bringing {name} up"), e))
    }

    /// Deletes link `name`; a missing link is success.
    pub async fn delete_link(&self, name: &str) -> NlResult<()> {
        let Some(index) = self.index_of(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_err(&format!("deleting link {name}"), e)),
        }
    }

    /// Makes the addresses of `index` in the families of `want` exactly `want` (IPv6
    /// link-local addresses are left alone).
    pub async fn sync_addresses(&self, index: u32, want: &[(IpAddr, u8)]) -> NlResult<()> {
        let current: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_err("listing addresses", e))?;
        let mut have = Vec::new();
        for msg in current {
            let ip = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            let Some(ip) = ip else { continue };
            let link_local = matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            let prefix = msg.header.prefix_len;
            if want.contains(&(ip, prefix)) {
                have.push((ip, prefix));
            } else if !link_local && want.iter().any(|(w, _)| w.is_ipv4() == ip.is_ipv4()) {
                self.handle
                    .address()
                    .del(msg)
                    .execute()
                    .await
                    .map_err(|e| nl_err(&format!("removing stale address {ip}/{prefix}"), e))?;
            }
        }
        for &(ip, prefix) in want {
            if !have.contains(&(ip, prefix)) {
                self.add_address(index, ip, prefix).await?;
            }
        }
        Ok(())
    }

    /// Adds `ip/prefix` to link `index`. IPv6 addresses skip duplicate address detection:
    /// berth's IPAM already guarantees uniqueness and pods must not wait seconds for DAD.
    pub async fn add_address(&self, index: u32, ip: IpAddr, prefix: u8) -> NlResult<()> {
        let mut req = self.handle.address().add(index, ip, prefix);
        if ip.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_err(&format!("adding address {ip}/{prefix}"), e)),
        }
    }

    /// Creates the veth pair `host` ↔ `peer`, with `peer` created directly inside the
    /// network namespace `netns` (so its name never meets the host's interface names).
    /// `mac`: the peer's address (None: the kernel's random one).
    pub async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        netns: &File,
        mac: Option<[u8; 6]>,
    ) -> NlResult<()> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer.to_string());
        if let Some(mac) = mac {
            peer_msg = peer_msg.address(mac.to_vec());
        }
        let peer_msg = peer_msg.setns_by_fd(netns.as_raw_fd()).build();
        let msg = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| nl_err(&format!("creating veth pair {host}/{peer}"), e))
    }

    /// Attaches `port` to `bridge_index`, with hairpin mode so a pod can reach itself
    /// through a published port, and brings it up.
    pub async fn attach(&self, port: &str, bridge_index: u32) -> NlResult<u32> {
        let index = self
            .index_of(port)
            .await?
            .ok_or_else(|| format!("link {port} vanished"))?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .controller(bridge_index)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl_err(&format!("attaching {port} to the bridge"), e))?;
        self.handle
            .link()
            .set_port(LinkBridgePort::new(index).hairpin(true).build())
            .execute()
            .await
            .map_err(|e| nl_err(&format!("setting hairpin mode on {port}"), e))?;
        self.set_up(port).await?;
        Ok(index)
    }

    /// Adds the default route via `gateway` on link `index`.
    pub async fn add_default_route(&self, index: u32, gateway: IpAddr) -> NlResult<()> {
        let route = match gateway {
            IpAddr::V4(gw) => rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .output_interface(index)
                .gateway(gw)
                .build(),
            IpAddr::V6(gw) => rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .output_interface(index)
                .gateway(gw)
                .build(),
        };
        match self.handle.route().add(route).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_err(&format!("adding default route via {gateway}"), e)),
        }
    }
}

/// Whether a netlink socket can be opened at all (for `ready()`).
pub(crate) fn probe() -> io::Result<()> {
    Socket::new(NETLINK_ROUTE).map(drop)
}
