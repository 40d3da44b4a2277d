//! The bridge network's administration: named networks made and removed, and the
//! bridges and tables removed when berthd stops (`network.remove_on_exit`) or on
//! `berthd reset`.

use std::sync::Arc;

use berth_core::pod::ipam::Subnet;
use berth_core::pod::networks::{NetworkCreate, NetworkDef};
use berth_core::pod::ports::PodError;

use super::bridge::BridgeNetwork;
use super::netlink::Netlink;
use super::segment::{Segment, netlink_failed};
use super::{named, sysctl};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

impl BridgeNetwork {
    /// Under the lock: defines the network (recorded first, so a failure or crash leaves
    /// something `remove` or `reset` knows), then its bridge, address and table.
    pub(super) async fn create_named(&self, req: &NetworkCreate) -> Result<NetworkDef, PodError> {
        let mut defs = named::load(&self.state_dir)?;
        let default_state = self.default.load()?;
        let mut used: Vec<Subnet> = default_state.v4.live_subnets();
        used.extend(defs.values().map(|d| d.subnet));
        used.extend(named::host_routes());
        let def = named::define(req, &defs, &used, now_ns())?;
        defs.insert(def.id.clone(), def.clone());
        named::save(&self.state_dir, &defs)?;
        let segs = self.segments()?;
        let seg = Self::find(&segs, &def.id)?.clone();
        if let Err(e) = self.build(&seg).await {
            if let Err(undo) = self.remove_named(&def.id).await {
                tracing::warn!(network = %def.name, error = %undo, "undoing a network creation failed");
            }
            return Err(e);
        }
        Ok(def)
    }

    async fn build(&self, seg: &Segment) -> Result<(), PodError> {
        if !seg.fwd.internal {
            sysctl::enable_forwarding(false)?;
        }
        let st = seg.load()?;
        let host = Netlink::host().map_err(netlink_failed)?;
        seg.ensure_bridge(&host, &st).await?;
        seg.sync_host(self.nft()?, &st).await
    }

    /// Makes every named network's bridge and table again (berthd starting after they were
    /// removed on exit): its name server listens on the gateway address.
    pub async fn restore_named(&self) -> Result<(), PodError> {
        let _guard = self.lock.lock().await;
        for seg in self.segments()?.iter().filter(|s| !s.id.is_empty()) {
            self.build(seg).await?;
        }
        Ok(())
    }

    /// Under the lock: removes a network no pod is attached to. Unknown: success.
    pub(super) async fn remove_named(&self, id: &str) -> Result<(), PodError> {
        let mut defs = named::load(&self.state_dir)?;
        let Some(def) = defs.get(id).cloned() else {
            return Ok(());
        };
        let seg = Arc::new(self.segment_of(&def));
        let st = seg.load()?;
        if let Some(pod) = st.pods.keys().next() {
            return Err(PodError::InvalidArgument(format!(
                "network {} ({id}) has active endpoints (pod {pod})",
                def.name
            )));
        }
        let host = Netlink::host().map_err(netlink_failed)?;
        seg.remove_host(self.nft.as_deref(), &host).await?;
        let dir = named::segment_dir(&self.state_dir, id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(PodError::failed(
                "network state",
                format!("{}: {e}", dir.display()),
            ));
        }
        defs.remove(id);
        named::save(&self.state_dir, &defs)?;
        self.segments()?;
        Ok(())
    }

    /// berthd stopping with `network.remove_on_exit`: removes the bridges and tables no pod
    /// is attached to (named networks stay defined; their bridges come back at the next
    /// start). Pods outlive berthd, so a bridge with pods stays (its veths would otherwise
    /// fall off it); returns whether the default bridge was removed.
    pub async fn remove_if_unused(&self) -> Result<bool, PodError> {
        let _guard = self.lock.lock().await;
        let host = Netlink::host().map_err(netlink_failed)?;
        let mut default_removed = false;
        for seg in self.segments()? {
            if !seg.load()?.is_empty() {
                continue;
            }
            seg.remove_host(self.nft.as_deref(), &host).await?;
            default_removed |= seg.id.is_empty();
        }
        Ok(default_removed)
    }

    /// `berthd reset` (no berthd running): deletes every recorded pod's veths, forgets
    /// addresses and ports, removes every bridge and table and forgets the named networks.
    /// Returns what it removed, one line each.
    pub async fn reset(&self) -> Result<Vec<String>, PodError> {
        let _guard = self.lock.lock().await;
        let host = Netlink::host().map_err(netlink_failed)?;
        let mut done = Vec::new();
        for seg in self.segments()? {
            let mut st = seg.load()?;
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
                    seg.state_dir.display()
                ));
            }
            let had_bridge = host
                .index_of(&seg.bridge)
                .await
                .map_err(netlink_failed)?
                .is_some();
            seg.remove_host(self.nft.as_deref(), &host).await?;
            done.push(format!(
                "nft table inet {} (if it existed)",
                super::nft::table_name(&seg.bridge)
            ));
            if had_bridge {
                done.push(format!("bridge {}", seg.bridge));
            }
        }
        let defs = named::load(&self.state_dir)?;
        if !defs.is_empty() {
            let _ = std::fs::remove_dir_all(self.state_dir.join("networks"));
            named::save(&self.state_dir, &Default::default())?;
            done.push(format!("{} named network(s)", defs.len()));
        }
        self.segments()?;
        Ok(done)
    }
}
