//! RuntimeService dispatch table: one line per RPC. RPCs berth does not serve yet answer
//! UNIMPLEMENTED naming what is missing; they never fake success.

use std::time::Instant;

use berth_api::cri::runtime_service_server::RuntimeService;
use berth_api::cri::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::error::not_yet;
use crate::{RuntimeSvc, deadline, rpc};

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RuntimeService for RuntimeSvc {
    async fn version(&self, r: Request<VersionRequest>) -> R<VersionResponse> {
        rpc::version::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn status(&self, r: Request<StatusRequest>) -> R<StatusResponse> {
        rpc::status::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn runtime_config(&self, r: Request<RuntimeConfigRequest>) -> R<RuntimeConfigResponse> {
        rpc::runtime_config::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn update_runtime_config(
        &self,
        r: Request<UpdateRuntimeConfigRequest>,
    ) -> R<UpdateRuntimeConfigResponse> {
        rpc::update_runtime_config::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn run_pod_sandbox(&self, r: Request<RunPodSandboxRequest>) -> R<RunPodSandboxResponse> {
        let (start, timeout) = (Instant::now(), deadline::grpc_timeout(r.metadata()));
        let resp = rpc::run_pod_sandbox::handle(&self.0, r.into_inner()).await?;
        if deadline::maybe_too_late(start, timeout) {
            self.0.engine.pods.undelivered.mark(&resp.pod_sandbox_id);
        }
        Ok(Response::new(resp))
    }
    async fn stop_pod_sandbox(
        &self,
        r: Request<StopPodSandboxRequest>,
    ) -> R<StopPodSandboxResponse> {
        rpc::stop_pod_sandbox::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn remove_pod_sandbox(
        &self,
        r: Request<RemovePodSandboxRequest>,
    ) -> R<RemovePodSandboxResponse> {
        rpc::remove_pod_sandbox::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn pod_sandbox_status(
        &self,
        r: Request<PodSandboxStatusRequest>,
    ) -> R<PodSandboxStatusResponse> {
        rpc::pod_sandbox_status::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn list_pod_sandbox(
        &self,
        r: Request<ListPodSandboxRequest>,
    ) -> R<ListPodSandboxResponse> {
        rpc::list_pod_sandbox::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn create_container(
        &self,
        r: Request<CreateContainerRequest>,
    ) -> R<CreateContainerResponse> {
        let (start, timeout) = (Instant::now(), deadline::grpc_timeout(r.metadata()));
        let resp = rpc::create_container::handle(&self.0, r.into_inner()).await?;
        if deadline::maybe_too_late(start, timeout) {
            self.0
                .engine
                .containers
                .undelivered
                .mark(&resp.container_id);
        }
        Ok(Response::new(resp))
    }
    async fn start_container(
        &self,
        r: Request<StartContainerRequest>,
    ) -> R<StartContainerResponse> {
        rpc::start_container::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn stop_container(&self, r: Request<StopContainerRequest>) -> R<StopContainerResponse> {
        rpc::stop_container::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn remove_container(
        &self,
        r: Request<RemoveContainerRequest>,
    ) -> R<RemoveContainerResponse> {
        rpc::remove_container::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn list_containers(
        &self,
        r: Request<ListContainersRequest>,
    ) -> R<ListContainersResponse> {
        rpc::list_containers::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn container_status(
        &self,
        r: Request<ContainerStatusRequest>,
    ) -> R<ContainerStatusResponse> {
        rpc::container_status::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn update_container_resources(
        &self,
        r: Request<UpdateContainerResourcesRequest>,
    ) -> R<UpdateContainerResourcesResponse> {
        rpc::update_container_resources::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn reopen_container_log(
        &self,
        r: Request<ReopenContainerLogRequest>,
    ) -> R<ReopenContainerLogResponse> {
        rpc::reopen_container_log::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> R<ExecSyncResponse> {
        rpc::exec_sync::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn exec(&self, r: Request<ExecRequest>) -> R<ExecResponse> {
        rpc::exec::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn attach(&self, r: Request<AttachRequest>) -> R<AttachResponse> {
        rpc::attach::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn port_forward(&self, r: Request<PortForwardRequest>) -> R<PortForwardResponse> {
        rpc::port_forward::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn container_stats(
        &self,
        r: Request<ContainerStatsRequest>,
    ) -> R<ContainerStatsResponse> {
        rpc::container_stats::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn list_container_stats(
        &self,
        r: Request<ListContainerStatsRequest>,
    ) -> R<ListContainerStatsResponse> {
        rpc::list_container_stats::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn pod_sandbox_stats(
        &self,
        r: Request<PodSandboxStatsRequest>,
    ) -> R<PodSandboxStatsResponse> {
        rpc::pod_sandbox_stats::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn list_pod_sandbox_stats(
        &self,
        r: Request<ListPodSandboxStatsRequest>,
    ) -> R<ListPodSandboxStatsResponse> {
        rpc::list_pod_sandbox_stats::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn checkpoint_container(
        &self,
        _: Request<CheckpointContainerRequest>,
    ) -> R<CheckpointContainerResponse> {
        Err(not_yet("CheckpointContainer", "container checkpoints"))
    }
    type GetContainerEventsStream = BoxStream<ContainerEventResponse>;
    async fn get_container_events(
        &self,
        r: Request<GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        rpc::get_container_events::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn list_metric_descriptors(
        &self,
        r: Request<ListMetricDescriptorsRequest>,
    ) -> R<ListMetricDescriptorsResponse> {
        rpc::list_metric_descriptors::handle(&self.0, r.into_inner()).map(Response::new)
    }
    async fn list_pod_sandbox_metrics(
        &self,
        r: Request<ListPodSandboxMetricsRequest>,
    ) -> R<ListPodSandboxMetricsResponse> {
        rpc::list_pod_sandbox_metrics::handle(&self.0, r.into_inner())
            .await
            .map(Response::new)
    }
}
