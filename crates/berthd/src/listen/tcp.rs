//! The opt-in TCP listener: mutual TLS only, a client certificate is required.

use std::fs;

use anyhow::Context;
use berth_core::config::TcpConfig;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

pub fn tls_config(cfg: &TcpConfig) -> anyhow::Result<ServerTlsConfig> {
    let read = |key: &str, p: &std::path::Path| {
        fs::read(p).with_context(|| format!("grpc.tcp.{key}: reading {}", p.display()))
    };
    let cert = read("tls_cert", &cfg.tls_cert)?;
    let key = read("tls_key", &cfg.tls_key)?;
    let ca = read("client_ca", &cfg.client_ca)?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false))
}
