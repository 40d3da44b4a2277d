//! Test harness: a real `docker-registry` on 127.0.0.1 with storage in a temp dir, and
//! images built here as OCI layouts (tar + gzip written by hand) pushed with skopeo.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_core::config::{Config, RegistryConfig};
use flate2::Compression;
use flate2::write::GzEncoder;

/// True (after saying why) when the environment cannot run registry tests.
pub fn skip() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: registry tests need root (snapshots keep file owners)");
        return true;
    }
    for bin in ["/usr/bin/docker-registry", "/usr/bin/skopeo"] {
        if !Path::new(bin).exists() {
            eprintln!("skipping: {bin} is not installed");
            return true;
        }
    }
    false
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running registry; killed (and its storage removed) on drop.
pub struct Registry {
    pub host: String,
    pub storage: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("mkdir");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .expect("write config");
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            host: format!("127.0.0.1:{port}"),
            storage,
            log,
            child: Some(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                reg.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many GETs of `path` (e.g. `/v2/x/blobs/sha256:...`) the registry served.
    pub fn gets(&self, path: &str) -> usize {
        let needle = format!("\"GET {path} ");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_file(&self, d: &Digest) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }

    /// Pushes an OCI layout's `tag` as `name:tag`.
    pub fn push(&self, layout: &Path, tag: &str, name: &str, all: bool) {
        let mut cmd = Command::new("/usr/bin/skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if all {
            cmd.arg("--all");
        }
        let out = cmd
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{name}:{tag}", self.host))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A gzip'd layer tar holding `files` (path, contents), plus its digests.
pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
}

pub fn layer(files: &[(&str, &[u8])]) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).expect("append");
    }
    let tar = b.into_inner().expect("tar");
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar).expect("gzip");
    let blob = gz.finish().expect("gzip");
    Layer {
        digest: Digest::of(&blob),
        diff_id: Digest::of(&tar),
        blob,
    }
}

/// An OCI image layout under construction.
pub struct Layout {
    pub dir: PathBuf,
    index: Vec<serde_json::Value>,
}

pub struct Built {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write");
        Layout {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        }
    }

    pub fn blob(&self, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), data).expect("write blob");
        d
    }

    /// Writes config + manifest for `layers`; returns the manifest descriptor JSON.
    pub fn image(&self, layers: &[&Layer], user: &str, arch: &str) -> (serde_json::Value, Built) {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"User": user, "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config_bytes = serde_json::to_vec(&config).expect("json");
        let config_digest = self.blob(&config_bytes);
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                self.blob(&l.blob);
                serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": l.digest.to_string(), "size": l.blob.len()})
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": layer_descs,
        });
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let digest = self.blob(&bytes);
        let desc = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.to_string(), "size": bytes.len(),
            "platform": {"architecture": arch, "os": "linux"},
        });
        (
            desc,
            Built {
                manifest: digest,
                config: config_digest,
                layers: layers.iter().map(|l| l.digest.clone()).collect(),
            },
        )
    }

    /// Tags a single-image manifest descriptor in index.json.
    pub fn tag(&mut self, desc: serde_json::Value, tag: &str) {
        let mut d = desc;
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        self.index.push(d);
        self.write_index();
    }

    /// Tags a nested OCI index made of `manifests`.
    pub fn tag_index(&mut self, manifests: Vec<serde_json::Value>, tag: &str) -> Digest {
        let inner = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&inner).expect("json");
        let digest = self.blob(&bytes);
        self.index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(), "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        digest
    }

    fn write_index(&self) {
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": self.index});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&idx).expect("json"),
        )
        .expect("write");
    }
}

/// A config whose image store lives in `root`, with the given registry settings.
pub fn config(root: &Path, registries: Vec<(String, RegistryConfig)>) -> Config {
    let mut cfg = Config {
        root_dir: root.to_path_buf(),
        ..Config::default()
    };
    cfg.image.auth_file = PathBuf::new();
    cfg.registries = registries.into_iter().collect();
    cfg
}

/// Names of the entries of a directory (empty when missing).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
