//! `docker load`: a docker-archive tarball (`manifest.json` with Config, RepoTags and
//! Layers, as dockerd's and our `docker save` write it; layers plain or compressed, repeated
//! layers as symlinks) or an OCI image layout (`index.json` + `blobs/`). The archive is
//! unpacked into a temporary directory first (its members come in any order), then each
//! image's layers go into the content store and the image is recorded under its tags.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use berth_core::image::{ImageError, LoadedImage, TarSource};
use berth_core::{Digest, Reference};
use serde::Deserialize;

use crate::content::io_error;
use crate::layer::{self, StoredLayer};
use crate::manifest::{self, Manifest};
use crate::platform;
use crate::pull::Lease;
use crate::store::Inner;

const MAX_JSON: u64 = 16 << 20;

fn bad(message: impl Into<String>) -> ImageError {
    ImageError::InvalidArgument(format!("invalid image archive: {}", message.into()))
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciDescriptor {
    digest: Digest,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// The archive's members on disk, with its symlinks kept aside (resolved by name).
struct Unpacked {
    dir: PathBuf,
    links: HashMap<PathBuf, PathBuf>,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `a/./b/../c` → `a/c`; None when it climbs out.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

impl Unpacked {
    fn read(dir: PathBuf, input: TarSource) -> Result<Self, ImageError> {
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
        let mut me = Unpacked {
            dir,
            links: HashMap::new(),
        };
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| bad(format!("not a tar stream: {e}")))?;
        for e in entries {
            let mut e = e.map_err(|e| bad(format!("reading the tar stream: {e}")))?;
            let raw = e
                .path()
                .map_err(|e| bad(format!("bad member name: {e}")))?
                .into_owned();
            let Some(name) = clean(&raw).filter(|n| !n.as_os_str().is_empty()) else {
                continue;
            };
            let kind = e.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = e
                    .link_name()
                    .map_err(|e| bad(format!("bad link in {}: {e}", raw.display())))?
                    .unwrap_or_default()
                    .into_owned();
                // Symlinks are relative to their directory, hardlinks to the archive root.
                let base = if kind.is_symlink() {
                    name.parent().unwrap_or(Path::new("")).join(target)
                } else {
                    target
                };
                if let Some(t) = clean(&base) {
                    me.links.insert(name, t);
                }
            } else if kind.is_file() {
                let dest = me.dir.join(&name);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_error("creating", parent, e))?;
                }
                let mut f =
                    std::fs::File::create(&dest).map_err(|e| io_error("creating", &dest, e))?;
                io::copy(&mut e, &mut f)
                    .map_err(|e| bad(format!("reading member {}: {e}", raw.display())))?;
            }
        }
        Ok(me)
    }

    /// Where the file a member name stands for is (through the archive's links).
    fn resolve(&self, name: &str) -> Result<PathBuf, ImageError> {
        let mut p = clean(Path::new(name)).ok_or_else(|| bad(format!("{name:?} escapes")))?;
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Ok(self.dir.join(&p))
    }

    /// The file a member name stands for, which must be there.
    fn path(&self, name: &str) -> Result<PathBuf, ImageError> {
        let real = self.resolve(name)?;
        if !real.is_file() {
            return Err(bad(format!("{name:?} is not in the archive")));
        }
        Ok(real)
    }

    fn small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.path(name)?;
        let mut v = Vec::new();
        std::fs::File::open(&p)
            .and_then(|f| f.take(MAX_JSON).read_to_end(&mut v))
            .map_err(|e| io_error("reading", &p, e))?;
        Ok(v)
    }
}

/// One image to record: its config and its layers' member names.
struct Wanted {
    config: Vec<u8>,
    layers: Vec<String>,
    tags: Vec<String>,
}

impl Inner {
    /// Blocking.
    pub(crate) fn load(self: &Arc<Self>, input: TarSource) -> Result<Vec<LoadedImage>, ImageError> {
        let files = Unpacked::read(self.content.temp_path("load"), input)?;
        let wanted = if files.path("manifest.json").is_ok() {
            self.docker_entries(&files)?
        } else if files.path("index.json").is_ok() {
            self.oci_entries(&files)?
        } else {
            return Err(bad(
                "neither manifest.json (docker save) nor index.json (OCI layout) is in it",
            ));
        };
        let mut ingested: HashMap<PathBuf, StoredLayer> = HashMap::new();
        let mut out = Vec::new();
        for w in wanted {
            let mut lease = Lease::new(self);
            let mut layers = Vec::new();
            for name in &w.layers {
                // A layer shared by several images is moved into the store once.
                let p = files.resolve(name)?;
                let l = match ingested.get(&p) {
                    Some(l) => l.clone(),
                    None => {
                        let p = files.path(name)?;
                        let l = layer::ingest_file(&self.content, &p, &format!("layer {name}"))?;
                        ingested.insert(p, l.clone());
                        l
                    }
                };
                lease.add(std::slice::from_ref(&l.blob), &[]);
                layers.push(l);
            }
            let img = self.record_local(w.config, &layers, &w.tags, &mut lease)?;
            tracing::info!(image = %img.id, tags = ?w.tags, "loaded image");
            out.push(LoadedImage {
                id: img.id,
                tags: w.tags,
            });
        }
        Ok(out)
    }

    fn docker_entries(&self, files: &Unpacked) -> Result<Vec<Wanted>, ImageError> {
        let entries: Vec<DockerEntry> = serde_json::from_slice(&files.small("manifest.json")?)
            .map_err(|e| bad(format!("manifest.json: {e}")))?;
        entries
            .into_iter()
            .map(|e| {
                let tags = e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| tag_name(t))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Wanted {
                    config: files.small(&e.config)?,
                    layers: e.layers,
                    tags,
                })
            })
            .collect()
    }

    fn oci_entries(&self, files: &Unpacked) -> Result<Vec<Wanted>, ImageError> {
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let index: OciIndex = serde_json::from_slice(&files.small("index.json")?)
            .map_err(|e| bad(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index.manifests {
            let mut bytes = files.small(&blob(&desc.digest))?;
            let mut doc = manifest::parse(&bytes, None, "index.json")?;
            for _ in 0..3 {
                let Manifest::Index(list) = &doc else { break };
                let d = platform::select(&self.platform, list).ok_or_else(|| {
                    bad(format!(
                        "{} has no image for {}",
                        desc.digest, self.platform
                    ))
                })?;
                bytes = files.small(&blob(&d.digest))?;
                doc = manifest::parse(&bytes, None, "index.json")?;
            }
            let Manifest::Image { config, layers } = doc else {
                return Err(bad(format!("{}: indexes nested too deeply", desc.digest)));
            };
            // containerd's annotation holds the full name; the OCI one often a bare tag.
            let name = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"))
                .filter(|n| n.contains(['/', ':']));
            let tags = match name.map(|n| tag_name(n)) {
                Some(Ok(t)) => vec![t],
                _ => Vec::new(),
            };
            out.push(Wanted {
                config: files.small(&blob(&config.digest))?,
                layers: layers.iter().map(|l| blob(&l.digest)).collect(),
                tags,
            });
        }
        Ok(out)
    }
}

/// A RepoTags name as a full `name:tag`.
fn tag_name(name: &str) -> Result<String, ImageError> {
    let r: Reference = name
        .parse()
        .map_err(|e| bad(format!("RepoTags {name:?}: {e}")))?;
    r.tagged_name()
        .ok_or_else(|| bad(format!("RepoTags {name:?} carries no tag")))
}
