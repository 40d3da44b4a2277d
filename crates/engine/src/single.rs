//! A pod with one container, created together: what a Docker container is on berth. The
//! container's creation failing takes the pod with it, so nothing half-made stays.

use std::sync::Arc;

use crate::{ContainerSpec, Engine, EngineError, PodSpec};

/// The ids of a pod and its one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Single {
    pub pod_id: String,
    pub container_id: String,
}

impl Engine {
    /// Runs the pod, then creates the container in it (not started: `start_container`
    /// does that). `container.pod_id` is ignored. When the container cannot be created the
    /// pod is removed again and the container's error is answered.
    pub async fn create_single(
        self: &Arc<Self>,
        pod: PodSpec,
        mut container: ContainerSpec,
    ) -> Result<Single, EngineError> {
        let pod_id = self.run_pod(pod).await?;
        container.pod_id = pod_id.clone();
        match self.create_container(container).await {
            Ok(container_id) => Ok(Single {
                pod_id,
                container_id,
            }),
            Err(e) => {
                if let Err(undo) = self.remove_pod(&pod_id).await {
                    tracing::error!(pod = %pod_id, error = %undo, "removing the pod of a container that could not be created");
                }
                Err(e)
            }
        }
    }
}
