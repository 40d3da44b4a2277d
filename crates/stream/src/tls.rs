//! HTTPS for the streaming server: the same settings as the CRI TCP listener (certificate,
//! key, and a CA that every client certificate must chain to; no certificate, no service).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

use crate::StreamServerError;

/// PEM files, as in `grpc.tcp` of the berth config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

fn tls_err(what: &'static str, path: &Path, message: impl std::fmt::Display) -> StreamServerError {
    StreamServerError::Tls {
        what,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, StreamServerError> {
    let file = File::open(path).map_err(|e| tls_err(what, path, e))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(what, path, e))?;
    if certs.is_empty() {
        return Err(tls_err(what, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, StreamServerError> {
    let file = File::open(path).map_err(|e| tls_err("key", path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| tls_err("key", path, e))?
        .ok_or_else(|| tls_err("key", path, "no PEM private key in the file"))
}

pub fn server_config(tls: &TlsSettings) -> Result<Arc<ServerConfig>, StreamServerError> {
    let certs = read_certs("cert", &tls.cert)?;
    let key = read_key(&tls.key)?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs("client_ca", &tls.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| tls_err("client_ca", &tls.client_ca, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_err("client_ca", &tls.client_ca, e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("cert", &tls.cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("cert", &tls.cert, e))?;
    // Upgrades (SPDY, WebSocket) exist in HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
