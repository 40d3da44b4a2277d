//! Connecting a pod to one more named network, and disconnecting it (Docker's `network
//! connect`/`disconnect`). The pod's record lists its networks, so a pod made again
//! (revive) is attached to the same ones; a stopped pod only has its list changed.

use berth_core::pod::PodState;
use berth_core::pod::networks::{Attachment, PodNetwork};
use berth_core::pod::record::NamespaceMode;

use crate::pods::teardown::network_request;
use crate::{Engine, EngineError};

impl Engine {
    /// Attaches pod `pod_id` to `network` (its next interface when it runs). Returns the
    /// attachment when the pod is running; already attached: the same one.
    pub async fn connect_network(
        &self,
        pod_id: &str,
        network: PodNetwork,
    ) -> Result<Option<Attachment>, EngineError> {
        let pods = &self.pods;
        let Some((_guard, mut rec)) = pods.locked(pod_id).await? else {
            return Err(EngineError::NotFound(format!(
                "pod sandbox {pod_id:?} not found"
            )));
        };
        if rec.modes.network != NamespaceMode::Pod || rec.net.join.is_some() {
            return Err(EngineError::InvalidArgument(format!(
                "pod {} does not have a network namespace of its own to connect",
                rec.id
            )));
        }
        if rec.net.networks.is_empty() {
            // Until now implicitly on the default network: keep it as eth0.
            rec.net.networks.push(PodNetwork::default());
        }
        match rec.net.networks.iter_mut().find(|n| n.id == network.id) {
            Some(n) => {
                for a in &network.aliases {
                    if !n.aliases.contains(a) {
                        n.aliases.push(a.clone());
                    }
                }
            }
            None => rec.net.networks.push(network.clone()),
        }
        let mut out = None;
        if rec.state == PodState::Ready {
            let req = network_request(pods, &rec);
            let a = pods.ports.network.connect(&req, &network).await?;
            rec.attachments.retain(|x| x.network != a.network);
            rec.attachments.push(a.clone());
            out = Some(a);
        }
        pods.store.put(&rec)?;
        Ok(out)
    }

    /// Detaches pod `pod_id` from `network` ("" the default network). Not attached:
    /// NotFound.
    pub async fn disconnect_network(&self, pod_id: &str, network: &str) -> Result<(), EngineError> {
        let pods = &self.pods;
        let Some((_guard, mut rec)) = pods.locked(pod_id).await? else {
            return Err(EngineError::NotFound(format!(
                "pod sandbox {pod_id:?} not found"
            )));
        };
        if rec.net.networks.is_empty() && rec.modes.network == NamespaceMode::Pod {
            rec.net.networks.push(PodNetwork::default());
        }
        let before = rec.net.networks.len();
        rec.net.networks.retain(|n| n.id != network);
        if rec.net.networks.len() == before {
            return Err(EngineError::NotFound(format!(
                "pod {} is not connected to network {network:?}",
                rec.id
            )));
        }
        if rec.state == PodState::Ready {
            pods.ports.network.disconnect(&rec.id, network).await?;
        }
        rec.attachments.retain(|a| a.network != network);
        pods.store.put(&rec)?;
        Ok(())
    }
}
