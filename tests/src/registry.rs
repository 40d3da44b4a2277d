//! A real `docker-registry` (Debian's distribution v2) on 127.0.0.1, plain or with htpasswd
//! basic auth + TLS, storing into a temp dir. Images are pushed into it with skopeo.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::certs::TestCa;
use crate::images::BuiltImage;
use crate::procs::{self, MARK_VAR};

/// How to start a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require HTTP basic auth with these credentials (htpasswd, bcrypt).
    pub creds: Option<(String, String)>,
    /// Serve HTTPS with a certificate for `localhost` and `127.0.0.1` from a fresh test CA.
    pub tls: bool,
    /// Host part used in image references: "127.0.0.1" (default) or "localhost".
    pub hostname: Option<String>,
}

/// A running registry; killed and its storage removed on drop.
pub struct Registry {
    /// `host:port` as written in image references.
    pub host: String,
    pub port: u16,
    /// The filesystem storage root (`docker/registry/v2/...` lives below).
    pub storage: PathBuf,
    /// The test CA's certificate (PEM), when serving TLS.
    pub ca_pem: Option<PathBuf>,
    pub creds: Option<(String, String)>,
    pub tls: bool,
    /// The registry's own log (stdout+stderr).
    pub log: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    mark: String,
}

/// An image pushed into a registry, with what the registry actually holds.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `host:port/name`
    pub repo: String,
    /// `host:port/name:tag`
    pub reference: String,
    /// The top-level manifest (or index) digest as pushed (skopeo --digestfile).
    pub digest: String,
    /// The amd64 image's config digest, i.e. the image id berthd should report.
    pub id: String,
    /// The amd64 manifest as stored in the registry.
    pub manifest: Value,
    /// The amd64 manifest's layer blob digests.
    pub layers: Vec<String>,
    pub built: BuiltImage,
}

impl PushedImage {
    /// `host:port/name@sha256:...`
    pub fn by_digest(&self) -> String {
        format!("{}@{}", self.repo, self.digest)
    }
}

const USER: &str = "berth";
const PASSWORD: &str = "s3cret-pw";

impl Registry {
    /// A plain-HTTP registry without auth on 127.0.0.1.
    pub fn start() -> Result<Self> {
        Self::start_with(RegistryOptions::default())
    }

    /// HTTPS (test CA) + basic auth (`berth` / `s3cret-pw`), referenced as `localhost:PORT`.
    pub fn start_secure() -> Result<Self> {
        Self::start_with(RegistryOptions {
            creds: Some((USER.into(), PASSWORD.into())),
            tls: true,
            hostname: Some("localhost".into()),
        })
    }

    pub fn start_with(opts: RegistryOptions) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(&opts) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    fn try_start(opts: &RegistryOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let port = crate::free_port()?;
        let hostname = opts.hostname.clone().unwrap_or_else(|| "127.0.0.1".into());
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        let mut ca_pem = None;
        if opts.tls {
            let ca = TestCa::new(dir.path())?;
            let files = ca.issue_server(dir.path(), "server", &["localhost", "127.0.0.1"])?;
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                files.cert.display(),
                files.key.display()
            ));
            ca_pem = Some(ca.ca_pem);
        }
        if let Some((u, p)) = &opts.creds {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .context("run htpasswd (apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout)?;
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            ));
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml)?;
        let log = dir.path().join("registry.log");
        let logf = std::fs::File::create(&log)?;
        let mark = crate::unique_id("registry");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .env(MARK_VAR, &mark)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .context("spawn docker-registry (install docker-registry)")?;
        let mut reg = Registry {
            host: format!("{hostname}:{port}"),
            port,
            storage,
            ca_pem,
            creds: opts.creds.clone(),
            tls: opts.tls,
            log,
            dir,
            child: Some(child),
            mark,
        };
        reg.wait_ready(Duration::from_secs(15))?;
        Ok(reg)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "docker-registry exited ({status}): {}",
                    crate::tail_file(&self.log, 20)
                );
            }
            if self.probe() {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!(
                    "docker-registry on port {} not ready: {}",
                    self.port,
                    crate::tail_file(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True once /v2/ answers (plain: 200 or 401; TLS: the port accepts connections).
    fn probe(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 32];
        let n = s.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        head.starts_with("HTTP/1.") && (head.contains(" 200") || head.contains(" 401"))
    }

    /// The temp dir holding config, certs and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `host:port/repo:tag`
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    fn cred_args(&self, flag: &str) -> Vec<String> {
        match &self.creds {
            Some((u, p)) => vec![format!("{flag}={u}:{p}")],
            None => Vec::new(),
        }
    }

    /// Pushes `img` as `<name>:<tag>` (name from its kind, tag "1").
    pub fn push(&self, img: &BuiltImage) -> Result<PushedImage> {
        self.push_as(img, img.kind.name(), &img.tag)
    }

    /// Pushes `img` as `repo:tag`.
    pub fn push_as(&self, img: &BuiltImage, repo: &str, tag: &str) -> Result<PushedImage> {
        let digestfile = self.dir.path().join(crate::unique_id("digest"));
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .args(self.cred_args("--dest-creds"))
        .arg("--digestfile")
        .arg(&digestfile);
        if img.is_index {
            cmd.arg("--all");
        }
        if let Some(f) = img.kind.push_format() {
            cmd.args(["--format", f]);
        }
        let reference = self.reference(repo, tag);
        cmd.arg(format!("oci:{}:{}", img.layout.display(), img.tag))
            .arg(format!("docker://{reference}"))
            .env(MARK_VAR, &self.mark);
        run(&mut cmd).with_context(|| format!("push {reference}"))?;
        let digest = std::fs::read_to_string(&digestfile)
            .context("read skopeo digestfile")?
            .trim()
            .to_string();
        let _ = std::fs::remove_file(&digestfile);
        let repo_full = format!("{}/{repo}", self.host);
        let mut manifest = self.manifest_raw(&format!("{repo_full}@{digest}"))?;
        if manifest.get("manifests").is_some() {
            let amd64 = manifest["manifests"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| m["platform"]["architecture"] == "amd64"))
                .and_then(|m| m["digest"].as_str())
                .context("index without amd64 manifest")?
                .to_string();
            manifest = self.manifest_raw(&format!("{repo_full}@{amd64}"))?;
        }
        let id = manifest["config"]["digest"]
            .as_str()
            .context("manifest without config")?
            .to_string();
        let layers = manifest["layers"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l["digest"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(PushedImage {
            repo: repo_full,
            reference,
            digest,
            id,
            manifest,
            layers,
            built: img.clone(),
        })
    }

    /// A manifest or index as stored (`skopeo inspect --raw docker://<reference>`).
    pub fn manifest_raw(&self, reference: &str) -> Result<Value> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "inspect",
            "--raw",
            "--tls-verify=false",
        ])
        .args(self.cred_args("--creds"))
        .arg(format!("docker://{reference}"))
        .env(MARK_VAR, &self.mark);
        let out = run(&mut cmd)?;
        serde_json::from_slice(&out).with_context(|| format!("parse manifest of {reference}"))
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or(hex))
            .join(hex)
            .join("data")
    }

    /// Flips bytes in the middle of a stored blob, keeping its length.
    pub fn corrupt_blob(&self, digest: &str) -> Result<()> {
        let path = self.blob_path(digest);
        let mut data = std::fs::read(&path).with_context(|| format!("read blob {path:?}"))?;
        let mid = data.len() / 2;
        let end = (mid + 64).min(data.len());
        for b in &mut data[mid..end] {
            *b ^= 0xA5;
        }
        std::fs::write(&path, data).with_context(|| format!("write blob {path:?}"))
    }

    /// Writes a Docker `config.json` holding this registry's credentials (or `creds`).
    pub fn write_docker_config(&self, path: &Path, creds: Option<(&str, &str)>) -> Result<()> {
        use base64::Engine as _;
        let (u, p) = match creds {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => self.creds.clone().context("registry has no credentials")?,
        };
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let v = serde_json::json!({ "auths": { self.host.clone(): { "auth": auth } } });
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("write {path:?}"))
    }

    /// Processes of this registry (and of skopeo runs against it) still alive.
    pub fn leftovers(&self) -> Vec<procs::Leftover> {
        procs::marked(&self.mark)
    }
}

fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = procs::check_none_left(&self.mark, "registry") {
            if std::thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}
