//! HTTPS with client certificates, like the CRI TCP listener.

use std::sync::Arc;

use berth_stream::TlsSettings;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client: (String, String),
}

fn pki() -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca = p.self_signed(&ca_key).expect("ca");
    let leaf = |san: &str| {
        let p = CertificateParams::new(vec![san.to_string()]).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &ca, &ca_key).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = leaf("127.0.0.1");
    std::fs::write(dir.path().join("cert.pem"), cert).expect("write");
    std::fs::write(dir.path().join("key.pem"), key).expect("write");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    Pki {
        ca_pem: ca.pem(),
        client: leaf("client"),
        dir,
    }
}

fn client_config(pki: &Pki, with_cert: bool) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("ca"))
        .expect("add");
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    if with_cert {
        let cert = CertificateDer::from_pem_slice(pki.client.0.as_bytes()).expect("cert");
        let key = PrivateKeyDer::from_pem_slice(pki.client.1.as_bytes()).expect("key");
        b.with_client_auth_cert(vec![cert], key)
            .expect("client auth")
    } else {
        b.with_no_client_auth()
    }
}

async fn exec_over_tls(pki: &Pki, rig: &Rig, with_cert: bool) -> Result<Vec<u8>, String> {
    let url = rig.exec(&["emit", "0"], false, false);
    assert!(url.starts_with("https://"), "{url}");
    let tcp = tokio::net::TcpStream::connect(addr_of(&url))
        .await
        .expect("tcp");
    let connector = TlsConnector::from(Arc::new(client_config(pki, with_cert)));
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut req = url
        .replacen("https://", "wss://", 1)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "v4.channel.k8s.io".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls)
        .await
        .map_err(|e| e.to_string())?;
    let (got, _) = crate::ws::collect(&mut ws, false).await;
    Ok(got.get(&1).cloned().unwrap_or_default())
}

#[tokio::test]
async fn tls_requires_a_client_certificate() {
    let pki = pki();
    let d = pki.dir.path();
    let tls = TlsSettings {
        cert: d.join("cert.pem"),
        key: d.join("key.pem"),
        client_ca: d.join("ca.pem"),
    };
    let rig = rig_with(60, Some(tls)).await;
    assert_eq!(exec_over_tls(&pki, &rig, true).await, Ok(b"out\n".to_vec()));
    let refused = exec_over_tls(&pki, &rig, false).await;
    assert!(refused.is_err(), "served without a client certificate");
}

#[tokio::test]
async fn tls_settings_errors_name_the_file() {
    let cfg = berth_core::config::StreamingConfig {
        address: "127.0.0.1:0".into(),
        token_ttl_secs: 60,
        drain_timeout_secs: 2,
    };
    let tls = TlsSettings {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
        client_ca: "/nonexistent/ca.pem".into(),
    };
    let err = berth_stream::StreamServer::start(
        &cfg,
        Some(tls),
        Arc::new(Fake::default()),
        Arc::new(Dialer),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}
