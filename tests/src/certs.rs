//! A throwaway certificate authority for TLS tests (registry over HTTPS, CRI over mTLS).
//! Files are written as PEM into a directory the caller owns.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA whose certificate is in `ca_pem`; it issues leaf certificates.
pub struct TestCa {
    pub ca_pem: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A leaf certificate and its key, both PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// Generates a CA and writes its certificate to `dir/ca.pem`.
    pub fn new(dir: &Path) -> Result<Self> {
        let key = KeyPair::generate().context("generate CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "berth test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).context("self-sign CA")?;
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).with_context(|| format!("write {ca_pem:?}"))?;
        Ok(Self { ca_pem, cert, key })
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), written as
    /// `dir/<stem>.pem` and `dir/<stem>.key`.
    pub fn issue_server(&self, dir: &Path, stem: &str, names: &[&str]) -> Result<CertFiles> {
        self.issue(dir, stem, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// Issues a client certificate with common name `cn` (for mutual TLS).
    pub fn issue_client(&self, dir: &Path, stem: &str, cn: &str) -> Result<CertFiles> {
        self.issue(dir, stem, &[cn], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<CertFiles> {
        let key = KeyPair::generate().context("generate leaf key")?;
        let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).context("leaf params")?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("berth-test"),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .context("sign leaf certificate")?;
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem())
            .with_context(|| format!("write {:?}", files.cert))?;
        std::fs::write(&files.key, key.serialize_pem())
            .with_context(|| format!("write {:?}", files.key))?;
        Ok(files)
    }
}
