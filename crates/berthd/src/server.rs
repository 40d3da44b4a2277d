//! The composition root: the one place that knows the real image store and listeners.

use std::time::Duration;

use anyhow::Context;
use berth_core::config::Config;
use berth_cri::Cri;
use berth_engine::{Engine, RuntimeInfo};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::listen::{tcp, unix};
use crate::lock::InstanceLock;
use crate::rpc_trace::RpcTraceLayer;
use crate::shutdown;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let _root_lock = InstanceLock::acquire(&cfg.root_dir, "root_dir")?;
    let _run_lock = InstanceLock::acquire(&cfg.run_dir, "run_dir")?;
    let stop = shutdown::on_signals()?;

    let images = berth_image::Store::open(&cfg).await.with_context(|| {
        format!(
            "opening the image store under {}",
            cfg.image_dir().display()
        )
    })?;
    let (ports, bridge) = crate::ports::build(&cfg)?;
    if let Some(bridge) = &bridge {
        // Named networks' bridges and tables, removed when berthd last stopped
        // (network.remove_on_exit) or by a reboot: their name servers listen on them.
        if let Err(e) = bridge.restore_named().await {
            tracing::warn!(error = %e, "making the named networks' bridges again");
        }
    }
    // Test hook: make RunPodSandbox fail right after the named step (see pods' rollback tests).
    let fault_inject = std::env::var("BERTHD_FAULT_INJECT")
        .ok()
        .filter(|s| !s.is_empty());
    if let Some(step) = &fault_inject {
        tracing::warn!(
            step,
            "BERTHD_FAULT_INJECT is set: RunPodSandbox will fail after this step"
        );
    }
    let (container_ports, streams) = crate::ports::containers(&cfg).await?;
    // The pods and containers, shared by every front door.
    let engine = Engine::open(
        images.clone(),
        ports,
        container_ports,
        RuntimeInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config: cfg.clone(),
            handler_features: berth_linux::features::probe(&cfg.runtime.oci_runtimes),
        },
        fault_inject,
    )
    .await
    .context("opening the pod store")?;
    let cri = Cri::new(engine.clone());
    let (runtime_svc, image_svc) = cri.services();
    let docker_server = if cfg.docker.enabled {
        let stop = stop.clone();
        Some(
            crate::docker::start(&cfg, images.clone(), engine.clone(), move || {
                shutdown::wait(stop.clone())
            })
            .await?,
        )
    } else {
        tracing::info!("the Docker API is off (docker.enabled = false)");
        None
    };
    if !cfg.metrics.address.is_empty() {
        let addr = crate::metrics::serve(&cfg.metrics.address, engine.clone()).await?;
        tracing::info!(%addr, "serving berthd's Prometheus metrics on http://{addr}/metrics");
    }

    let listener = unix::bind(
        &cfg.grpc.socket,
        cfg.grpc.socket_mode,
        &cfg.grpc.socket_group,
        "grpc",
    )?;
    let unix_server = Server::builder()
        .layer(RpcTraceLayer)
        .add_service(runtime_svc.clone())
        .add_service(image_svc.clone())
        .serve_with_incoming_shutdown(unix::incoming(listener), shutdown::wait(stop.clone()));
    tracing::info!(socket = %cfg.grpc.socket.display(), "serving the CRI on unix://{}", cfg.grpc.socket.display());

    let tcp_server = if cfg.grpc.tcp.enabled {
        let tls = tcp::tls_config(&cfg.grpc.tcp)?;
        let addr = cfg
            .grpc
            .tcp
            .address
            .parse()
            .with_context(|| format!("grpc.tcp.address {:?}", cfg.grpc.tcp.address))?;
        let incoming =
            TcpIncoming::bind(addr).map_err(|e| anyhow::anyhow!("grpc.tcp.address {addr}: {e}"))?;
        tracing::info!(%addr, "serving the CRI on TCP with mutual TLS");
        let server = Server::builder()
            .tls_config(tls)
            .context("grpc.tcp TLS settings")?
            .layer(RpcTraceLayer)
            .add_service(runtime_svc)
            .add_service(image_svc)
            .serve_with_incoming_shutdown(incoming, shutdown::wait(stop.clone()));
        Some(server)
    } else {
        None
    };

    let cri_servers = async {
        match tcp_server {
            Some(tcp) => tokio::try_join!(unix_server, tcp).map(|_| ()),
            None => unix_server.await,
        }
    };
    // The Docker API drains on the same signal; its requests in flight (a pull's progress)
    // get the same grace as the CRI's.
    let servers = async {
        let docker = async {
            if let Some(d) = docker_server {
                d.await;
            }
        };
        let (cri, ()) = tokio::join!(cri_servers, docker);
        cri
    };
    let grace = Duration::from_secs(cfg.grpc.shutdown_grace_secs);
    let result = tokio::select! {
        r = servers => r.context("serving the CRI"),
        _ = async { shutdown::wait(stop).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace elapsed with RPCs still in flight; exiting");
            Ok(())
        }
    };
    if let Err(e) = std::fs::remove_file(&cfg.grpc.socket)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "removing the CRI socket");
    }
    if cfg.docker.enabled
        && let Err(e) = std::fs::remove_file(&cfg.docker.socket)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "removing the Docker API socket");
    }
    // Open exec/attach/port-forward sessions end with the daemon (an exec's process is
    // killed with its session, as the kubelet's streams end with the kubelet).
    streams.shutdown().await;
    drop(cri);
    drop(engine);
    if cfg.network.remove_on_exit
        && let Some(bridge) = bridge
    {
        match bridge.remove_if_unused().await {
            Ok(true) => {
                tracing::info!(bridge = %cfg.network.bridge, "removed the bridge and its nft table (network.remove_on_exit)")
            }
            Ok(false) => {
                tracing::warn!(bridge = %cfg.network.bridge, "network.remove_on_exit: pods are still attached; the bridge and its nft table stay")
            }
            Err(e) => {
                tracing::warn!(error = %e, "network.remove_on_exit: removing the bridge and its nft table")
            }
        }
    }
    tracing::info!("berthd stopped");
    result
}
