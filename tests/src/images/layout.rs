//! Writing an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) that
//! `skopeo copy oci:DIR:TAG ...` reads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::layer::{Layer, sha256_digest};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// A content descriptor as it appears in manifests and indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// What an image config says beyond its layers.
#[derive(Debug, Clone)]
pub struct ConfigSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub user: Option<String>,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    /// The image's `Volumes` (Dockerfile `VOLUME`).
    pub volumes: Vec<String>,
}

impl ConfigSpec {
    pub fn linux(arch: &str) -> Self {
        Self {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
            user: None,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: vec!["sh".into()],
            volumes: Vec::new(),
        }
    }
}

/// One written image manifest.
#[derive(Debug, Clone)]
pub struct WrittenManifest {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    pub spec: ConfigSpec,
}

pub struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("mkdir {dir:?}"))?;
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .context("write oci-layout")?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn put_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let digest = sha256_digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        let path = self.dir.join("blobs/sha256").join(hex);
        if !path.exists() {
            std::fs::write(&path, bytes).with_context(|| format!("write {path:?}"))?;
        }
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
        })
    }

    fn put_json(&self, media_type: &str, v: &Value) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(v).context("serialize json")?;
        self.put_blob(media_type, &bytes)
    }

    /// Writes layers, config and manifest of one image.
    pub fn put_image(&self, layers: &[Layer], spec: &ConfigSpec) -> Result<WrittenManifest> {
        let mut descs = Vec::new();
        for l in layers {
            descs.push(self.put_blob(l.media_type, &l.blob)?);
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let mut cfg = serde_json::Map::new();
        if !spec.env.is_empty() {
            cfg.insert("Env".into(), json!(spec.env));
        }
        if !spec.cmd.is_empty() {
            cfg.insert("Cmd".into(), json!(spec.cmd));
        }
        if let Some(u) = &spec.user {
            cfg.insert("User".into(), json!(u));
        }
        if !spec.volumes.is_empty() {
            let vols: serde_json::Map<String, Value> = spec
                .volumes
                .iter()
                .map(|v| (v.clone(), json!({})))
                .collect();
            cfg.insert("Volumes".into(), Value::Object(vols));
        }
        let mut config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": spec.architecture,
            "os": spec.os,
            "config": Value::Object(cfg),
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": layers.iter().enumerate()
                .map(|(i, _)| json!({ "created": "2024-01-01T00:00:00Z", "created_by": format!("berth-tests layer {i}") }))
                .collect::<Vec<_>>(),
        });
        if let Some(v) = &spec.variant {
            config["variant"] = json!(v);
        }
        let config_desc = self.put_json(CONFIG_TYPE, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config_desc.to_json(),
            "layers": descs.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        });
        let manifest_desc = self.put_json(MANIFEST_TYPE, &manifest)?;
        Ok(WrittenManifest {
            manifest: manifest_desc,
            config: config_desc,
            layers: descs,
            diff_ids,
            spec: spec.clone(),
        })
    }

    /// Writes an image index over `manifests`, with their platforms.
    pub fn put_index(&self, manifests: &[WrittenManifest]) -> Result<Descriptor> {
        let entries: Vec<Value> = manifests
            .iter()
            .map(|m| {
                let mut d = m.manifest.to_json();
                let mut p = json!({ "os": m.spec.os, "architecture": m.spec.architecture });
                if let Some(v) = &m.spec.variant {
                    p["variant"] = json!(v);
                }
                d["platform"] = p;
                d
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries });
        self.put_json(INDEX_TYPE, &index)
    }

    /// Writes `index.json` naming `top` as `tag`.
    pub fn finish(&self, top: &Descriptor, tag: &str) -> Result<()> {
        let mut d = top.to_json();
        d["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        let index = json!({ "schemaVersion": 2, "manifests": [d] });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index).context("serialize index.json")?,
        )
        .context("write index.json")
    }
}
