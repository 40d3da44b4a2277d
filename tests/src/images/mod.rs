//! Test images built offline as OCI layouts from the host's static busybox, cached under
//! `<target>/berth-tests/images/` (builds are deterministic, keyed by recipe version and the
//! busybox binary), ready to be pushed with [`crate::Registry::push`].

pub mod layer;
pub mod layout;
pub mod recipes;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use layout::{LayoutWriter, WrittenManifest};

/// Bump when any recipe changes, so stale cached layouts are not reused.
const RECIPE_VERSION: u32 = 2;

/// The images the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TestImage {
    /// 3 gzip layers (skeleton+busybox, applet links+passwd, marker); Env PATH, Cmd ["sh"],
    /// no User. Pushed in Docker schema 2 form (Docker media types).
    Busybox,
    /// Like busybox, zstd layers, OCI media types.
    Zstd,
    /// An OCI index: linux/amd64 and linux/arm64/v8; `/platform` holds the arch.
    Multiarch,
    /// busybox + layer (a/x, a/keep, b/y) + layer (a/.wh.x, b/.wh..wh..opq, b/z).
    Whiteout,
    /// busybox + two layers of 25 MiB random data each (`/big/random{0,1}.bin`).
    Big,
    /// busybox with config User "1000:1000" and /home/tester/owned owned by 1000.
    User,
    /// busybox with config Volumes {"/data"}; the image has /data (mode 750) with
    /// `seed` ("seeded\n", owned by 1000) in it, for copy-up into the anonymous volume.
    Volume,
}

impl TestImage {
    pub const ALL: [TestImage; 7] = [
        TestImage::Busybox,
        TestImage::Zstd,
        TestImage::Multiarch,
        TestImage::Whiteout,
        TestImage::Big,
        TestImage::User,
        TestImage::Volume,
    ];

    /// Repository name used when pushing (`127.0.0.1:PORT/<name>:1`).
    pub fn name(self) -> &'static str {
        match self {
            TestImage::Busybox => "busybox",
            TestImage::Zstd => "zstd",
            TestImage::Multiarch => "multiarch",
            TestImage::Whiteout => "whiteout",
            TestImage::Big => "big",
            TestImage::User => "user",
            TestImage::Volume => "volume",
        }
    }

    /// The form skopeo pushes: `Some("v2s2")` converts to Docker media types.
    pub fn push_format(self) -> Option<&'static str> {
        match self {
            TestImage::Busybox => Some("v2s2"),
            _ => None,
        }
    }
}

/// One platform's manifest as built (OCI form, before any skopeo conversion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformImage {
    pub os: String,
    pub architecture: String,
    pub manifest_digest: String,
    /// The image id berthd should report (`sha256:` + config digest).
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
    /// Compressed layers + config + manifest bytes.
    pub size: u64,
    pub user: Option<String>,
}

/// A built OCI layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    pub kind: TestImage,
    /// The OCI layout directory (`oci:<layout>:<tag>` for skopeo).
    pub layout: PathBuf,
    pub tag: String,
    /// Digest of the top-level manifest (or index) in the layout.
    pub digest: String,
    pub is_index: bool,
    pub platforms: Vec<PlatformImage>,
}

impl BuiltImage {
    /// The manifest for `arch` (the only one for single-platform images).
    pub fn platform(&self, arch: &str) -> Option<&PlatformImage> {
        self.platforms.iter().find(|p| p.architecture == arch)
    }

    /// The linux/amd64 manifest, which berthd picks by default.
    pub fn amd64(&self) -> Result<&PlatformImage> {
        self.platform("amd64")
            .context("image has no amd64 manifest")
    }
}

/// Where the static busybox comes from: `BERTH_TEST_BUSYBOX` or /bin/busybox.
pub fn busybox_path() -> PathBuf {
    std::env::var_os("BERTH_TEST_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

fn platform_of(m: &WrittenManifest) -> PlatformImage {
    PlatformImage {
        os: m.spec.os.clone(),
        architecture: m.spec.architecture.clone(),
        manifest_digest: m.manifest.digest.clone(),
        config_digest: m.config.digest.clone(),
        layer_digests: m.layers.iter().map(|l| l.digest.clone()).collect(),
        diff_ids: m.diff_ids.clone(),
        size: m.layers.iter().map(|l| l.size).sum::<u64>() + m.config.size + m.manifest.size,
        user: m.spec.user.clone(),
    }
}

fn build_into(kind: TestImage, dir: &Path, busybox: &[u8]) -> Result<BuiltImage> {
    let layout_dir = dir.join("layout");
    let w = LayoutWriter::create(&layout_dir)?;
    let tag = "1".to_string();
    let (top, is_index, manifests) = match kind {
        TestImage::Multiarch => {
            let ms = recipes::multiarch(&w, busybox)?;
            (w.put_index(&ms)?, true, ms)
        }
        single => {
            let m = match single {
                TestImage::Busybox => recipes::busybox(&w, busybox)?,
                TestImage::Zstd => recipes::zstd(&w, busybox)?,
                TestImage::Whiteout => recipes::whiteout(&w, busybox)?,
                TestImage::Big => recipes::big(&w, busybox)?,
                TestImage::User => recipes::user(&w, busybox)?,
                TestImage::Volume => recipes::volume(&w, busybox)?,
                TestImage::Multiarch => unreachable!("handled above"),
            };
            (m.manifest.clone(), false, vec![m])
        }
    };
    w.finish(&top, &tag)?;
    Ok(BuiltImage {
        kind,
        layout: layout_dir,
        tag,
        digest: top.digest,
        is_index,
        platforms: manifests.iter().map(platform_of).collect(),
    })
}

/// Builds (or loads from the cache) one test image.
pub fn build(kind: TestImage) -> Result<BuiltImage> {
    // One builder at a time within a process; across processes the rename below is atomic.
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let bb_path = busybox_path();
    let busybox = std::fs::read(&bb_path)
        .with_context(|| format!("read {bb_path:?} (install busybox-static)"))?;
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.to_le_bytes());
    h.update(&busybox);
    let key = hex::encode(h.finalize());
    let cache = crate::target_dir().join("berth-tests/images");
    let final_dir = cache.join(format!("{}-{}", kind.name(), &key[..12]));
    let meta = final_dir.join("meta.json");
    if let Ok(text) = std::fs::read(&meta)
        && let Ok(img) = serde_json::from_slice::<BuiltImage>(&text)
        && img.layout.join("index.json").is_file()
    {
        return Ok(img);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("mkdir {cache:?}"))?;
    let tmp = cache.join(crate::unique_id(&format!("tmp-{}", kind.name())));
    let built = build_into(kind, &tmp, &busybox)
        .with_context(|| format!("build test image {}", kind.name()))?;
    let mut img = built.clone();
    img.layout = final_dir.join("layout");
    std::fs::write(tmp.join("meta.json"), serde_json::to_vec_pretty(&img)?)?;
    if std::fs::rename(&tmp, &final_dir).is_err() {
        // Another process won the race (or a broken entry exists): use or replace it.
        if std::fs::read(&meta)
            .ok()
            .and_then(|t| serde_json::from_slice::<BuiltImage>(&t).ok())
            .is_none()
        {
            let _ = std::fs::remove_dir_all(&final_dir);
            std::fs::rename(&tmp, &final_dir)
                .with_context(|| format!("rename into {final_dir:?}"))?;
        } else {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    if !img.layout.join("index.json").is_file() {
        bail!("cached layout {:?} is incomplete", img.layout);
    }
    Ok(img)
}
