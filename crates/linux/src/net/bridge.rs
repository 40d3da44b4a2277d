//! The built-in pod network: a Linux bridge with a gateway address, one veth pair per pod,
//! addresses from berth's persistent IPAM, and an nftables table for masquerading and
//! published ports.
//!
//! Every setup/teardown runs under the state directory's lock and starts by reloading the
//! state files. Setup records the pod (addresses, veth, ports) *before* touching the
//! kernel, so whatever a failure or a crash leaves behind is described by the state and
//! removed by teardown; rollback on error is exactly teardown.
//!
//! The bridge and the nft table are created with the first pod and then kept, also when
//! the last pod goes: re-creating them cost every one-pod-at-a-time workload (`docker run
//! --rm`) some 30–50 ms per pod. They go only when asked: [`BridgeNetwork::remove_if_unused`]
//! (berthd stopping with `network.remove_on_exit`) and [`BridgeNetwork::reset`] (`berthd
//! reset`). Host-wide settings (ip_forward, route_localnet on our own bridge) are only ever
//! turned on, never off: another bridge or runtime on the node may rely on them.
//!
//! Pod CIDR updates (UpdateRuntimeConfig, sent once by the kubelet at startup) are
//! accepted at any time: new pods get addresses from the new subnet, pods holding an
//! address of the old one keep it (the bridge keeps that gateway, masquerading still
//! covers it) until they are torn down. The bridge's addresses are reconciled at each
//! setup.

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::config::NetworkConfig;
use berth_core::pod::ipam::Subnet;
use berth_core::pod::ports::{Network, NetworkRequest, NetworkResult, PodError};

use super::netlink::Netlink;
use super::nft::{self, PodPorts};
use super::state::{PodEntry, State, dir_lock};
use super::{hostports, sysctl};

/// The pod-side interface name.
const POD_IFNAME: &str = "eth0";

pub struct BridgeNetwork {
    bridge: String,
    subnet: Subnet,
    subnet_v6: Option<Subnet>,
    state_dir: PathBuf,
    lock: Arc<tokio::sync::Mutex<()>>,
    nft: Option<PathBuf>,
    /// The nft batch last applied by this instance (None: unknown or deleted).
    applied: std::sync::Mutex<Option<serde_json::Value>>,
}

/// The host side of a pod's veth pair: `bth` + the first 11 characters of the pod id
/// (interface names have at most 15). Pod ids are hex; anything else is dropped.
pub fn host_veth_name(pod_id: &str) -> String {
    let id: String = pod_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(11)
        .collect();
    format!("bth{id}")
}

fn netlink_failed(e: impl std::fmt::Display) -> PodError {
    PodError::failed("netlink", e)
}

impl BridgeNetwork {
    /// `state_dir` is `<root_dir>/network`; it is created on first use.
    pub fn new(cfg: &NetworkConfig, state_dir: PathBuf) -> Result<Self, PodError> {
        let subnet: Subnet = cfg
            .subnet
            .parse()
            .map_err(|e| PodError::InvalidArgument(format!("network.subnet: {e}")))?;
        let subnet_v6 = match cfg.subnet_v6.as_str() {
            "" => None,
            s => Some(
                s.parse::<Subnet>()
                    .map_err(|e| PodError::InvalidArgument(format!("network.subnet_v6: {e}")))?,
            ),
        };
        if !subnet.is_ipv4() || subnet_v6.is_some_and(|s| s.is_ipv4()) {
            return Err(PodError::InvalidArgument(
                "network.subnet must be IPv4 and network.subnet_v6 IPv6".into(),
            ));
        }
        let me = Self {
            bridge: cfg.bridge.clone(),
            subnet,
            subnet_v6,
            lock: dir_lock(&state_dir),
            state_dir,
            nft: nft::find_nft(),
            applied: std::sync::Mutex::new(None),
        };
        // Fail at startup, not at the first pod, when the state files are unreadable.
        me.load()?;
        Ok(me)
    }

    /// berth's nft table for this bridge (`inet` family).
    pub fn nft_table(&self) -> String {
        nft::table_name(&self.bridge)
    }

    fn load(&self) -> Result<State, PodError> {
        State::load(&self.state_dir, self.subnet, self.subnet_v6)
    }

    fn nft(&self) -> Result<&PathBuf, PodError> {
        self.nft.as_ref().ok_or_else(|| {
            PodError::failed(
                "nftables",
                "the nft tool is not installed (Debian package nftables)",
            )
        })
    }

    /// Brings berth's table in line with the state: the rules of every pod (none when no
    /// pod is left; the table and the bridge stay).
    async fn sync_host(&self, st: &State) -> Result<(), PodError> {
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
        let batch = nft::render(&self.bridge, &subnets, &pods);
        // Most pods publish no ports: the table is then unchanged and reloading it (10–20 ms
        // of `nft`) is skipped. berthd is the only writer of this table.
        if self.applied_is(&batch) {
            return Ok(());
        }
        nft::apply(self.nft()?, &batch).await?;
        self.set_applied(Some(batch));
        Ok(())
    }

    /// Deletes berth's nft table and the bridge (both may be gone already).
    async fn remove_host(&self, host: &Netlink) -> Result<(), PodError> {
        if let Some(nft) = &self.nft {
            nft::apply(nft, &nft::render_delete(&self.bridge)).await?;
        }
        self.set_applied(None);
        host.delete_link(&self.bridge).await.map_err(netlink_failed)
    }

    /// berthd stopping with `network.remove_on_exit`: removes the bridge and the table
    /// when no pod is attached. Pods outlive berthd, so while any is left both stay (its
    /// veth would otherwise fall off the bridge); returns whether they were removed.
    pub async fn remove_if_unused(&self) -> Result<bool, PodError> {
        let _guard = self.lock.lock().await;
        if !self.load()?.is_empty() {
            return Ok(false);
        }
        let host = Netlink::host().map_err(netlink_failed)?;
        self.remove_host(&host).await?;
        Ok(true)
    }

    /// `berthd reset` (no berthd running): deletes every recorded pod's veth, forgets its
    /// addresses and ports, and removes the table and the bridge. Returns what it removed,
    /// one line each.
    pub async fn reset(&self) -> Result<Vec<String>, PodError> {
        let _guard = self.lock.lock().await;
        let mut st = self.load()?;
        let host = Netlink::host().map_err(netlink_failed)?;
        let mut done = Vec::new();
        for (id, e) in &st.pods {
            if host
                .index_of(&e.veth)
                .await
                .map_err(netlink_failed)?
                .is_some()
            {
                host.delete_link(&e.veth).await.map_err(netlink_failed)?;
                done.push(format!("veth {} (pod {id})", e.veth));
            }
        }
        if !st.is_empty() {
            st.clear();
            st.save()?;
            done.push(format!(
                "pod addresses and ports in {}",
                self.state_dir.display()
            ));
        }
        let had_bridge = host
            .index_of(&self.bridge)
            .await
            .map_err(netlink_failed)?
            .is_some();
        self.remove_host(&host).await?;
        done.push(format!(
            "nft table inet {} (if it existed)",
            self.nft_table()
        ));
        if had_bridge {
            done.push(format!("bridge {}", self.bridge));
        }
        Ok(done)
    }

    fn applied_is(&self, batch: &serde_json::Value) -> bool {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        applied.as_ref() == Some(batch)
    }

    fn set_applied(&self, batch: Option<serde_json::Value>) {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = batch;
    }

    /// Removes everything of `pod_id` (veth, addresses, rules). Idempotent; used for
    /// teardown and for rollback.
    async fn disconnect(&self, pod_id: &str) -> Result<(), PodError> {
        let mut st = self.load()?;
        let veth = st
            .pods
            .get(pod_id)
            .map_or_else(|| host_veth_name(pod_id), |e| e.veth.clone());
        let host = Netlink::host().map_err(netlink_failed)?;
        // Deleting the host end deletes the pod end with it (wherever its netns is).
        host.delete_link(&veth).await.map_err(netlink_failed)?;
        let mut changed = st.pods.remove(pod_id).is_some();
        changed |= st.v4.release(pod_id).is_some();
        if let Some(v6) = &mut st.v6 {
            changed |= v6.release(pod_id).is_some();
        }
        // A second teardown (RemovePodSandbox after StopPodSandbox) finds nothing recorded:
        // rewriting the unchanged state would cost a RemovePodSandbox its fsyncs.
        if changed {
            st.save()?;
        }
        self.sync_host(&st).await
    }

    async fn connect(&self, st: &State, req: &NetworkRequest, veth: &str) -> Result<(), PodError> {
        let addrs = st.addresses_of(&req.pod_id);
        sysctl::enable_forwarding(addrs.iter().any(|(ip, _)| ip.is_ipv6()))?;
        let host = Netlink::host().map_err(netlink_failed)?;
        let br = host
            .ensure_bridge(&self.bridge)
            .await
            .map_err(netlink_failed)?;
        let mut gateways: Vec<(IpAddr, u8)> = st
            .v4
            .live_subnets()
            .iter()
            .map(|s| (s.gateway(), s.prefix()))
            .collect();
        if let Some(v6) = st.v6.as_ref().filter(|p| !p.is_empty()) {
            gateways.extend(v6.live_subnets().iter().map(|s| (s.gateway(), s.prefix())));
        }
        host.sync_addresses(br, &gateways)
            .await
            .map_err(netlink_failed)?;
        sysctl::route_localnet(&self.bridge)?;

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
        host.create_veth(veth, POD_IFNAME, &ns)
            .await
            .map_err(netlink_failed)?;
        host.attach(veth, br).await.map_err(netlink_failed)?;

        let pod = Netlink::in_netns(&req.netns)
            .await
            .map_err(|e| netlink_failed(format!("connecting to {}: {e}", req.netns.display())))?;
        pod.set_up("lo").await.map_err(netlink_failed)?;
        let eth0 = pod
            .index_of(POD_IFNAME)
            .await
            .map_err(netlink_failed)?
            .ok_or_else(|| {
                netlink_failed(format!(
                    "{POD_IFNAME} missing in the pod right after creation"
                ))
            })?;
        for (ip, subnet) in &addrs {
            pod.add_address(eth0, *ip, subnet.prefix())
                .await
                .map_err(netlink_failed)?;
        }
        pod.set_up(POD_IFNAME).await.map_err(netlink_failed)?;
        for (_, subnet) in &addrs {
            pod.add_default_route(eth0, subnet.gateway())
                .await
                .map_err(netlink_failed)?;
        }
        self.sync_host(st).await
    }
}

#[async_trait]
impl Network for BridgeNetwork {
    async fn setup(&self, req: &NetworkRequest) -> Result<NetworkResult, PodError> {
        let _guard = self.lock.lock().await;
        let mut st = self.load()?;
        let veth = host_veth_name(&req.pod_id);
        if let Some((other, _)) = st
            .pods
            .iter()
            .find(|(id, e)| e.veth == veth && **id != req.pod_id)
        {
            return Err(PodError::failed(
                "network",
                format!(
                    "pod {other} already uses interface {veth} (pod ids share their first 11 characters)"
                ),
            ));
        }
        let ports = hostports::normalize(&req.port_mappings);
        let mut families: Vec<IpAddr> = vec![self.subnet.gateway()];
        families.extend(self.subnet_v6.map(|s| s.gateway()));
        hostports::check(&req.pod_id, &ports, &families, &st.pods)?;

        // Record first: from here on, teardown knows everything there is to undo.
        let ipam_failed = |e| PodError::failed("ipam", e);
        st.v4.allocate(&req.pod_id).map_err(ipam_failed)?;
        if self.subnet_v6.is_some()
            && let Some(v6) = &mut st.v6
        {
            v6.allocate(&req.pod_id).map_err(ipam_failed)?;
        }
        st.pods.insert(
            req.pod_id.clone(),
            PodEntry {
                veth: veth.clone(),
                ports,
            },
        );
        st.save()?;

        if let Err(e) = self.connect(&st, req, &veth).await {
            if let Err(undo) = self.disconnect(&req.pod_id).await {
                tracing::warn!(pod = %req.pod_id, error = %undo, "rolling back pod network setup failed");
            }
            return Err(e);
        }
        let mut ips = st.addresses_of(&req.pod_id).into_iter().map(|(ip, _)| ip);
        Ok(NetworkResult {
            ip: ips.next(),
            additional_ips: ips.collect(),
        })
    }

    async fn teardown(&self, req: &NetworkRequest) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        self.disconnect(&req.pod_id).await
    }

    fn ready(&self) -> Result<(), String> {
        if self.nft.is_none() {
            return Err("the nft tool is not installed (Debian package nftables)".into());
        }
        super::netlink::probe().map_err(|e| format!("cannot open a netlink socket: {e}"))
    }

    async fn set_pod_cidr(&self, cidr: Subnet) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        let mut st = self.load()?;
        if cidr.is_ipv4() {
            st.v4.set_subnet(cidr);
        } else {
            match (&mut st.v6, self.subnet_v6) {
                (Some(v6), Some(_)) => v6.set_subnet(cidr),
                _ => {
                    return Err(PodError::InvalidArgument(format!(
                        "pod CIDR {cidr} is IPv6 but network.subnet_v6 is not set (dual stack is off)"
                    )));
                }
            }
        }
        st.save()
    }
}
