//! The built-in pod network: a Linux bridge with a gateway address, one veth pair per pod,
//! addresses from berth's persistent IPAM, and an nftables table for masquerading and
//! published ports. Besides that default network, named networks (Docker's user-defined
//! networks): each one more bridge of its own ([`Segment`]: same code, its own subnet,
//! state directory and table), isolated from the others by forward rules. A pod is on
//! the default network unless it asks for named ones (eth0, eth1, … in that order), and
//! may be connected to more later.
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
//! reset`). A named network's bridge and table are made when it is created and removed
//! with it. Host-wide settings (ip_forward, route_localnet on our own bridge) are only ever
//! turned on, never off: another bridge or runtime on the node may rely on them.
//!
//! Pod CIDR updates (UpdateRuntimeConfig, sent once by the kubelet at startup) are
//! accepted at any time: new pods get addresses from the new subnet, pods holding an
//! address of the old one keep it (the bridge keeps that gateway, masquerading still
//! covers it) until they are torn down. The bridge's addresses are reconciled at each
//! setup.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::config::NetworkConfig;
use berth_core::pod::ipam::Subnet;
use berth_core::pod::networks::{Attachment, NetworkCreate, NetworkDef, PodNetwork};
use berth_core::pod::ports::{Network, NetworkRequest, NetworkResult, PodError};

use super::nft::{self, Forwarding};
use super::segment::{NAMED_BRIDGE_PREFIX, Segment};
use super::state::{PodEntry, State, dir_lock};
use super::{hostports, named};

pub struct BridgeNetwork {
    pub(super) default: Arc<Segment>,
    pub(super) state_dir: PathBuf,
    pub(super) lock: Arc<tokio::sync::Mutex<()>>,
    pub(super) nft: Option<PathBuf>,
    /// The named networks' segments by id, kept so each remembers the table it applied;
    /// brought in line with the definitions file under the lock.
    named: std::sync::Mutex<BTreeMap<String, Arc<Segment>>>,
}

/// The host side of a pod's veth pair: `bth` + the first 11 characters of the pod id
/// (interface names have at most 15). Pod ids are hex; anything else is dropped.
pub fn host_veth_name(pod_id: &str) -> String {
    veth_name("bth", pod_id)
}

/// The host side of a pod's `eth<n>` (n ≥ 1): `bthv<n>` + the pod id's first characters.
fn extra_veth_name(pod_id: &str, n: usize) -> String {
    veth_name(&format!("bthv{n}"), pod_id)
}

fn veth_name(prefix: &str, pod_id: &str) -> String {
    let id: String = pod_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(15usize.saturating_sub(prefix.len()))
        .collect();
    format!("{prefix}{id}")
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
        let default = Segment::new(
            String::new(),
            cfg.bridge.clone(),
            subnet,
            subnet_v6,
            state_dir.clone(),
            Forwarding {
                internal: false,
                isolated_from: vec![format!("{NAMED_BRIDGE_PREFIX}*")],
            },
            None,
        );
        let me = Self {
            default: Arc::new(default),
            lock: dir_lock(&state_dir),
            state_dir,
            nft: nft::find_nft(),
            named: std::sync::Mutex::new(BTreeMap::new()),
        };
        // Fail at startup, not at the first pod, when the state files are unreadable.
        me.default.load()?;
        me.segments()?;
        Ok(me)
    }

    /// berth's nft table for the default bridge (`inet` family).
    pub fn nft_table(&self) -> String {
        nft::table_name(&self.default.bridge)
    }

    pub(super) fn nft(&self) -> Result<&PathBuf, PodError> {
        self.nft.as_ref().ok_or_else(|| {
            PodError::failed(
                "nftables",
                "the nft tool is not installed (Debian package nftables)",
            )
        })
    }

    pub(super) fn segment_of(&self, def: &NetworkDef) -> Segment {
        Segment::new(
            def.id.clone(),
            def.bridge.clone(),
            def.subnet,
            None,
            named::segment_dir(&self.state_dir, &def.id),
            Forwarding {
                internal: def.internal,
                isolated_from: vec![
                    format!("{NAMED_BRIDGE_PREFIX}*"),
                    self.default.bridge.clone(),
                ],
            },
            Some(def.gateway),
        )
    }

    /// The default segment, then every named one (definitions reloaded).
    pub(super) fn segments(&self) -> Result<Vec<Arc<Segment>>, PodError> {
        let defs = named::load(&self.state_dir)?;
        let mut map = self.named.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| defs.contains_key(id));
        for def in defs.values() {
            map.entry(def.id.clone())
                .or_insert_with(|| Arc::new(self.segment_of(def)));
        }
        Ok(std::iter::once(self.default.clone())
            .chain(map.values().cloned())
            .collect())
    }

    pub(super) fn find<'a>(
        segs: &'a [Arc<Segment>],
        id: &str,
    ) -> Result<&'a Arc<Segment>, PodError> {
        segs.iter().find(|s| s.id == id).ok_or_else(|| {
            PodError::InvalidArgument(format!("network {id} not found (removed meanwhile?)"))
        })
    }

    /// Every segment's pods, merged (for host port checks across networks).
    fn all_pods(segs: &[Arc<Segment>]) -> Result<BTreeMap<String, PodEntry>, PodError> {
        let mut all = BTreeMap::new();
        for seg in segs {
            for (id, e) in seg.load()?.pods {
                all.entry(id)
                    .and_modify(|x: &mut PodEntry| x.ports.extend(e.ports.clone()))
                    .or_insert(e);
            }
        }
        Ok(all)
    }

    /// Removes `pod_id` from every network. Idempotent; teardown and rollback.
    async fn detach_all(&self, segs: &[Arc<Segment>], pod_id: &str) -> Result<(), PodError> {
        let veth0 = host_veth_name(pod_id);
        let mut first = None;
        for seg in segs {
            let leftover = seg.id.is_empty().then_some(veth0.as_str());
            if let Err(e) = seg.detach(self.nft.as_deref(), pod_id, leftover).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Records the pod on `seg` as `ifname` and builds it.
    async fn attach_one(
        &self,
        seg: &Segment,
        req: &NetworkRequest,
        n: usize,
        ports: Vec<berth_core::pod::record::PortMapping>,
    ) -> Result<Attachment, PodError> {
        let veth = match n {
            0 => host_veth_name(&req.pod_id),
            n => extra_veth_name(&req.pod_id, n),
        };
        let ifname = format!("eth{n}");
        let mut st = seg.load()?;
        if let Some((other, _)) = st
            .pods
            .iter()
            .find(|(id, e)| e.veth == veth && **id != req.pod_id)
        {
            return Err(PodError::failed(
                "network",
                format!(
                    "pod {other} already uses interface {veth} (pod ids share their first characters)"
                ),
            ));
        }
        let entry = PodEntry {
            veth: veth.clone(),
            ports,
            ifname: ifname.clone(),
        };
        seg.record(&mut st, &req.pod_id, entry, seg.subnet_v6.is_some())?;
        seg.attach(self.nft()?, &st, req, &veth, &ifname, n == 0)
            .await?;
        seg.attachment(&st, &req.pod_id).ok_or_else(|| {
            PodError::failed("network", format!("pod {} has no address", req.pod_id))
        })
    }

    fn addresses(seg: &Segment, pod_id: &str) -> Result<Vec<IpAddr>, PodError> {
        let st: State = seg.load()?;
        Ok(st
            .addresses_of(pod_id)
            .into_iter()
            .map(|(ip, _)| ip)
            .collect())
    }
}

#[async_trait]
impl Network for BridgeNetwork {
    async fn setup(&self, req: &NetworkRequest) -> Result<NetworkResult, PodError> {
        let _guard = self.lock.lock().await;
        let segs = self.segments()?;
        let wanted = match req.networks.as_slice() {
            [] => vec![PodNetwork::default()],
            n => n.to_vec(),
        };
        let targets: Vec<&Arc<Segment>> = wanted
            .iter()
            .map(|n| Self::find(&segs, &n.id))
            .collect::<Result<_, _>>()?;
        let ports = hostports::normalize(&req.port_mappings);
        let primary = targets[0];
        let mut families: Vec<IpAddr> = vec![primary.subnet.gateway()];
        families.extend(primary.subnet_v6.map(|s| s.gateway()));
        hostports::check(&req.pod_id, &ports, &families, &Self::all_pods(&segs)?)?;

        let mut attachments = Vec::new();
        for (n, seg) in targets.iter().enumerate() {
            let p = if n == 0 { ports.clone() } else { Vec::new() };
            match self.attach_one(seg, req, n, p).await {
                Ok(a) => attachments.push(a),
                Err(e) => {
                    if let Err(undo) = self.detach_all(&segs, &req.pod_id).await {
                        tracing::warn!(pod = %req.pod_id, error = %undo, "rolling back pod network setup failed");
                    }
                    return Err(e);
                }
            }
        }
        let mut ips = Self::addresses(primary, &req.pod_id)?.into_iter();
        Ok(NetworkResult {
            ip: ips.next(),
            additional_ips: ips.collect(),
            attachments,
        })
    }

    async fn teardown(&self, req: &NetworkRequest) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        let segs = self.segments()?;
        self.detach_all(&segs, &req.pod_id).await
    }

    fn ready(&self) -> Result<(), String> {
        if self.nft.is_none() {
            return Err("the nft tool is not installed (Debian package nftables)".into());
        }
        super::netlink::probe().map_err(|e| format!("cannot open a netlink socket: {e}"))
    }

    async fn set_pod_cidr(&self, cidr: Subnet) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        let mut st = self.default.load()?;
        if cidr.is_ipv4() {
            st.v4.set_subnet(cidr);
        } else {
            match (&mut st.v6, self.default.subnet_v6) {
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

    async fn create_network(&self, req: &NetworkCreate) -> Result<NetworkDef, PodError> {
        let _guard = self.lock.lock().await;
        self.create_named(req).await
    }

    async fn remove_network(&self, id: &str) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        self.remove_named(id).await
    }

    fn networks(&self) -> Result<Vec<NetworkDef>, PodError> {
        let mut defs: Vec<NetworkDef> = named::load(&self.state_dir)?.into_values().collect();
        defs.sort_by_key(|d| d.created_at);
        Ok(defs)
    }

    async fn connect(
        &self,
        req: &NetworkRequest,
        network: &PodNetwork,
    ) -> Result<Attachment, PodError> {
        let _guard = self.lock.lock().await;
        let segs = self.segments()?;
        let seg = Self::find(&segs, &network.id)?;
        if let Some(a) = seg.attachment(&seg.load()?, &req.pod_id) {
            return Ok(a);
        }
        let mut used = Vec::new();
        for s in &segs {
            if let Some(a) = s.attachment(&s.load()?, &req.pod_id) {
                used.push(a.ifname);
            }
        }
        let n = (0..)
            .find(|n| !used.contains(&format!("eth{n}")))
            .unwrap_or(0);
        match self.attach_one(seg, req, n, Vec::new()).await {
            Ok(a) => Ok(a),
            Err(e) => {
                if let Err(undo) = seg.detach(self.nft.as_deref(), &req.pod_id, None).await {
                    tracing::warn!(pod = %req.pod_id, error = %undo, "rolling back a network connect failed");
                }
                Err(e)
            }
        }
    }

    async fn disconnect(&self, pod_id: &str, network: &str) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        let segs = self.segments()?;
        let seg = Self::find(&segs, network)?;
        seg.detach(self.nft.as_deref(), pod_id, None).await
    }
}
