//! The opt-in TCP listener serves only clients with a certificate from the configured CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use berth_api::cri::VersionRequest;
use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

fn ca(name: &str) -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Pki {
        ca_pem: cert.pem(),
        ca: cert,
        ca_key: key,
    }
}

fn leaf(pki: &Pki, sans: &[&str]) -> (String, String) {
    let p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.ca, &pki.ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn version(
    port: u16,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<String, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let ep = Endpoint::try_from(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?;
    let ch = ep.connect().await.map_err(|e| format!("{e:?}"))?;
    let v = RuntimeServiceClient::new(ch)
        .version(VersionRequest::default())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(v.into_inner().runtime_name)
}

#[tokio::test]
async fn tcp_requires_a_client_certificate_from_the_ca() {
    let server_ca = ca("berth test server CA");
    let client_ca = ca("berth test client CA");
    let rogue_ca = ca("rogue CA");
    let (srv_cert, srv_key) = leaf(&server_ca, &["localhost", "127.0.0.1"]);
    let (cli_cert, cli_key) = leaf(&client_ca, &["client"]);
    let (rogue_cert, rogue_key) = leaf(&rogue_ca, &["client"]);

    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let port = free_port();
    let extra = format!(
        "[grpc.tcp]\nenabled = true\naddress = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca = \"{}\"\n",
        w("srv.pem", &srv_cert),
        w("srv.key", &srv_key),
        w("clientca.pem", &client_ca.ca_pem)
    );
    let d = common::start(&extra);
    // wait for the TCP port too
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ok = version(port, &server_ca.ca_pem, Some((&cli_cert, &cli_key))).await;
    assert_eq!(ok.as_deref(), Ok("berth"), "{}", d.log());
    let none = version(port, &server_ca.ca_pem, None).await;
    assert!(
        none.is_err(),
        "a client without a certificate must be refused"
    );
    let rogue = version(port, &server_ca.ca_pem, Some((&rogue_cert, &rogue_key))).await;
    assert!(
        rogue.is_err(),
        "a certificate from another CA must be refused"
    );
    drop(d);
}
