//! One bridge of the bridge network: the default one (`network.bridge`) or a named network's.
//! Its state directory (addresses, pods and their published ports), its nft table, and
//! attaching a pod to it (a veth pair, the pod's address, the default route for eth0).
//!
//! Callers hold the state directory's lock ([`super::state::dir_lock`] of the bridge
//! network's root directory, one for every segment) and reload the state first.

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;

use berth_core::pod::ipam::Subnet;
use berth_core::pod::networks::{Attachment, mac_of, mac_text};
use berth_core::pod::ports::{NetworkRequest, PodError};

use super::netlink::Netlink;
use super::nft::{self, Forwarding, PodPorts};
use super::state::{PodEntry, State};
use super::sysctl;

/// The prefix of named networks' bridges (`bthn` + 11 characters of the network id): the
/// isolation rules match them all with one wildcard, and leak checks see them (`bth*`).
pub const NAMED_BRIDGE_PREFIX: &str = "bthn";

pub(crate) fn netlink_failed(e: impl std::fmt::Display) -> PodError {
    PodError::failed("netlink", e)
}

pub(crate) struct Segment {
    /// The network id; "" for the default network.
    pub id: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub subnet_v6: Option<Subnet>,
    pub state_dir: PathBuf,
    pub fwd: Forwarding,
    /// A gateway other than the subnet's first address (named networks only), kept out
    /// of the pool.
    pub gateway: Option<IpAddr>,
    /// The nft batch last applied (None: unknown or deleted).
    applied: std::sync::Mutex<Option<serde_json::Value>>,
}

impl Segment {
    pub fn new(
        id: String,
        bridge: String,
        subnet: Subnet,
        subnet_v6: Option<Subnet>,
        state_dir: PathBuf,
        fwd: Forwarding,
        gateway: Option<IpAddr>,
    ) -> Self {
        Self {
            id,
            bridge,
            subnet,
            subnet_v6,
            state_dir,
            fwd,
            gateway,
            applied: std::sync::Mutex::new(None),
        }
    }

    pub fn load(&self) -> Result<State, PodError> {
        let mut st = State::load(&self.state_dir, self.subnet, self.subnet_v6)?;
        if let Some(gw) = self.gateway
            && gw != self.subnet.gateway()
        {
            st.v4
                .current
                .held
                .entry(gw)
                .or_insert_with(|| "gateway".into());
        }
        Ok(st)
    }

    fn gateways(&self, st: &State) -> Vec<(IpAddr, u8)> {
        if let Some(gw) = self.gateway {
            return vec![(gw, self.subnet.prefix())];
        }
        let mut gateways: Vec<(IpAddr, u8)> = st
            .v4
            .live_subnets()
            .iter()
            .map(|s| (s.gateway(), s.prefix()))
            .collect();
        if let Some(v6) = st.v6.as_ref().filter(|p| !p.is_empty()) {
            gateways.extend(v6.live_subnets().iter().map(|s| (s.gateway(), s.prefix())));
        }
        gateways
    }

    /// Creates the bridge (if missing) with its gateway addresses; returns its index.
    pub async fn ensure_bridge(&self, host: &Netlink, st: &State) -> Result<u32, PodError> {
        let gw = self.gateway.unwrap_or_else(|| self.subnet.gateway());
        let mac = match gw {
            IpAddr::V4(v4) => Some(mac_of(v4)),
            IpAddr::V6(_) => None,
        };
        let br = host
            .ensure_bridge(&self.bridge, mac)
            .await
            .map_err(netlink_failed)?;
        host.sync_addresses(br, &self.gateways(st))
            .await
            .map_err(netlink_failed)?;
        sysctl::route_localnet(&self.bridge)?;
        Ok(br)
    }

    /// Brings the table in line with the state (rules of every pod publishing ports).
    pub async fn sync_host(&self, nft: &std::path::Path, st: &State) -> Result<(), PodError> {
        let mut subnets = st.v4.live_subnets();
        if let Some(v6) = st.v6.as_ref().filter(|p| !p.is_empty()) {
            subnets.extend(v6.live_subnets());
        }
        let pods: Vec<PodPorts<'_>> = st
            .pods
            .iter()
            .filter(|(_, e)| !e.ports.is_empty())
            .map(|(id, e)| PodPorts {
                pod_id: id,
                ips: st.addresses_of(id).into_iter().map(|(ip, _)| ip).collect(),
                ports: &e.ports,
            })
            .collect();
        let batch = nft::render(&self.bridge, &subnets, &pods, &self.fwd);
        // Most pods publish no ports: the table is then unchanged and reloading it (10–20 ms
        // of `nft`) is skipped. berthd is the only writer of this table.
        if self.applied_is(&batch) {
            return Ok(());
        }
        nft::apply(nft, &batch).await?;
        self.set_applied(Some(batch));
        Ok(())
    }

    /// Deletes the nft table and the bridge (both may be gone already).
    pub async fn remove_host(
        &self,
        nft: Option<&std::path::Path>,
        host: &Netlink,
    ) -> Result<(), PodError> {
        if let Some(nft) = nft {
            nft::apply(nft, &nft::render_delete(&self.bridge)).await?;
        }
        self.set_applied(None);
        host.delete_link(&self.bridge).await.map_err(netlink_failed)
    }

    fn applied_is(&self, batch: &serde_json::Value) -> bool {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        applied.as_ref() == Some(batch)
    }

    fn set_applied(&self, batch: Option<serde_json::Value>) {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = batch;
    }

    /// Where `pod_id` is attached here, per the state.
    pub fn attachment(&self, st: &State, pod_id: &str) -> Option<Attachment> {
        let entry = st.pods.get(pod_id)?;
        let (ip, subnet) = st
            .addresses_of(pod_id)
            .into_iter()
            .find(|(ip, _)| ip.is_ipv4())?;
        let mac = match ip {
            IpAddr::V4(v4) => mac_text(mac_of(v4)),
            IpAddr::V6(_) => String::new(),
        };
        Some(Attachment {
            network: self.id.clone(),
            ifname: if entry.ifname.is_empty() {
                "eth0".into()
            } else {
                entry.ifname.clone()
            },
            ip: Some(ip),
            prefix: subnet.prefix(),
            gateway: Some(self.gateway.unwrap_or_else(|| subnet.gateway())),
            mac,
        })
    }

    /// Records `req.pod_id` here (addresses, veth, ports) and saves the state: from then
    /// on, `detach` knows everything there is to undo.
    pub fn record(
        &self,
        st: &mut State,
        pod_id: &str,
        entry: PodEntry,
        dual_stack: bool,
    ) -> Result<(), PodError> {
        let ipam_failed = |e| PodError::failed("ipam", e);
        st.v4.allocate(pod_id).map_err(ipam_failed)?;
        if dual_stack && let Some(v6) = &mut st.v6 {
            v6.allocate(pod_id).map_err(ipam_failed)?;
        }
        st.pods.insert(pod_id.to_string(), entry);
        st.save()
    }

    /// Builds what the state records for the pod: the bridge, the veth pair (`ifname` in
    /// the pod), the addresses, the default route when `primary`, the rules.
    pub async fn attach(
        &self,
        nft: &std::path::Path,
        st: &State,
        req: &NetworkRequest,
        veth: &str,
        ifname: &str,
        primary: bool,
    ) -> Result<(), PodError> {
        let addrs = st.addresses_of(&req.pod_id);
        if !self.fwd.internal {
            sysctl::enable_forwarding(addrs.iter().any(|(ip, _)| ip.is_ipv6()))?;
        }
        let host = Netlink::host().map_err(netlink_failed)?;
        let br = self.ensure_bridge(&host, st).await?;

        // A veth left by an interrupted earlier attempt goes first (its peer with it).
        host.delete_link(veth).await.map_err(netlink_failed)?;
        let ns = File::open(&req.netns).map_err(|e| {
            PodError::failed(
                "netns",
                format!(
                    "opening the pod's network namespace {}: {e}",
                    req.netns.display()
                ),
            )
        })?;
        let mac = addrs.iter().find_map(|(ip, _)| match ip {
            IpAddr::V4(v4) => Some(mac_of(*v4)),
            IpAddr::V6(_) => None,
        });
        host.create_veth(veth, ifname, &ns, mac)
            .await
            .map_err(netlink_failed)?;
        host.attach(veth, br).await.map_err(netlink_failed)?;

        let pod = Netlink::in_netns(&req.netns)
            .await
            .map_err(|e| netlink_failed(format!("connecting to {}: {e}", req.netns.display())))?;
        pod.set_up("lo").await.map_err(netlink_failed)?;
        let index = pod
            .index_of(ifname)
            .await
            .map_err(netlink_failed)?
            .ok_or_else(|| {
                netlink_failed(format!("{ifname} missing in the pod right after creation"))
            })?;
        for (ip, subnet) in &addrs {
            pod.add_address(index, *ip, subnet.prefix())
                .await
                .map_err(netlink_failed)?;
        }
        pod.set_up(ifname).await.map_err(netlink_failed)?;
        if primary {
            for (ip, subnet) in &addrs {
                let gw = match self.gateway {
                    Some(gw) if gw.is_ipv4() == ip.is_ipv4() => gw,
                    _ => subnet.gateway(),
                };
                pod.add_default_route(index, gw)
                    .await
                    .map_err(netlink_failed)?;
            }
        }
        self.sync_host(nft, st).await
    }

    /// Removes everything of `pod_id` here (veth, addresses, rules). Idempotent.
    /// `leftover`: a veth to delete when nothing is recorded (eth0's, which an interrupted
    /// setup may have left; its name is known without a record).
    pub async fn detach(
        &self,
        nft: Option<&std::path::Path>,
        pod_id: &str,
        leftover: Option<&str>,
    ) -> Result<(), PodError> {
        let mut st = self.load()?;
        let Some(entry) = st.pods.get(pod_id).cloned() else {
            if let Some(veth) = leftover {
                let host = Netlink::host().map_err(netlink_failed)?;
                host.delete_link(veth).await.map_err(netlink_failed)?;
            }
            return Ok(());
        };
        let host = Netlink::host().map_err(netlink_failed)?;
        // Deleting the host end deletes the pod end with it (wherever its netns is).
        host.delete_link(&entry.veth)
            .await
            .map_err(netlink_failed)?;
        st.pods.remove(pod_id);
        st.v4.release(pod_id);
        if let Some(v6) = &mut st.v6 {
            v6.release(pod_id);
        }
        st.save()?;
        match nft {
            Some(nft) => self.sync_host(nft, &st).await,
            None => Ok(()),
        }
    }
}
