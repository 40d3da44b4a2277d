//! `docker save`: images as a docker-archive tarball, the layout `docker load` has read
//! since Docker 1.10: `manifest.json` (`[{Config, RepoTags, Layers}]`), `<config hex>.json`
//! and `<diff id hex>/layer.tar` (uncompressed, each layer once).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::Arc;

use berth_core::Digest;
use berth_core::image::{ImageError, TarSink};
use serde::Serialize;
use tar::{EntryType, Header};

use crate::layer::StoredLayer;
use crate::manifest::LayerCompression;
use crate::pull::Lease;
use crate::records::Match;
use crate::registry::error_chain;
use crate::store::Inner;

/// The Config digest of one image of a docker archive and its names.
#[derive(Serialize)]
pub(crate) struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags")]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// `docker.io/library/x:1` → `x:1`, `docker.io/u/x:1` → `u/x:1`, as dockerd writes names.
pub fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

fn write_err(e: io::Error) -> ImageError {
    ImageError::Store(format!("writing the archive: {}", error_chain(&e)))
}

impl Inner {
    /// Blocking.
    pub(crate) fn save(self: &Arc<Self>, names: &[String], out: TarSink) -> Result<(), ImageError> {
        // Images in the order first named, each with the tags asked for.
        let mut order: Vec<Digest> = Vec::new();
        let mut tags: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        {
            let st = self.lock();
            for n in names {
                let m = st
                    .records
                    .resolve(n)?
                    .ok_or_else(|| ImageError::NotFound(n.clone()))?;
                let id = m.id().clone();
                if !order.contains(&id) {
                    order.push(id.clone());
                }
                let t = tags.entry(id).or_default();
                if let Match::Tag(_, tag) = m {
                    let f = familiar(&tag);
                    if !t.contains(&f) {
                        t.push(f);
                    }
                }
            }
        }
        // Held while streaming: an image removed meanwhile keeps its content until the end.
        let mut lease = Lease::new(self);
        for id in &order {
            let rec = self.record(id)?;
            lease.add(&rec.blobs.iter().cloned().collect::<Vec<_>>(), &[]);
        }
        let mut builder = tar::Builder::new(out);
        let mut written: HashSet<Digest> = HashSet::new();
        let mut entries = Vec::new();
        for id in &order {
            let rec = self.record(id)?;
            let stored = self.stored_manifest(&rec)?;
            let config = self
                .content
                .read_small(id, 16 << 20)?
                .ok_or_else(|| ImageError::Store(format!("image {id}: config blob missing")))?;
            let config_name = format!("{}.json", id.hex());
            append_bytes(&mut builder, &config_name, &config).map_err(write_err)?;
            let mut layers = Vec::new();
            for l in &stored.layers {
                let dir = l.diff_id.hex().to_string();
                if written.insert(l.diff_id.clone()) {
                    self.append_layer(&mut builder, &dir, l)?;
                }
                layers.push(format!("{dir}/layer.tar"));
            }
            let t = tags.remove(id).unwrap_or_default();
            entries.push(ArchiveEntry {
                config: config_name,
                repo_tags: (!t.is_empty()).then_some(t),
                layers,
            });
        }
        let manifest = serde_json::to_vec(&entries)
            .map_err(|e| ImageError::Store(format!("encoding manifest.json: {e}")))?;
        append_bytes(&mut builder, "manifest.json", &manifest).map_err(write_err)?;
        let mut out = builder.into_inner().map_err(write_err)?;
        out.flush().map_err(write_err)
    }

    /// `<dir>/layer.tar`: the layer uncompressed (counted in a first pass, since a tar
    /// header carries the size).
    fn append_layer<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        dir: &str,
        l: &StoredLayer,
    ) -> Result<(), ImageError> {
        let path = self.content.blob_path(&l.blob);
        let open = || -> Result<Box<dyn Read>, ImageError> {
            let f = std::fs::File::open(&path)
                .map_err(|e| crate::content::io_error("reading layer", &path, e))?;
            let f = io::BufReader::with_capacity(256 * 1024, f);
            Ok(match l.compression {
                LayerCompression::None => Box::new(f),
                LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
                LayerCompression::Zstd => Box::new(
                    zstd::stream::read::Decoder::with_buffer(f)
                        .map_err(|e| crate::content::io_error("reading layer", &path, e))?,
                ),
            })
        };
        let read_err = |e: io::Error| ImageError::Store(format!("reading layer {}: {e}", l.blob));
        let size = io::copy(&mut open()?, &mut io::sink()).map_err(read_err)?;
        let mut h = dir_header();
        builder
            .append_data(&mut h, format!("{dir}/"), io::empty())
            .map_err(write_err)?;
        let mut h = file_header(size);
        builder
            .append_data(&mut h, format!("{dir}/layer.tar"), open()?.take(size))
            .map_err(write_err)
    }
}

fn dir_header() -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h
}

fn file_header(size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h
}

fn append_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = file_header(data.len() as u64);
    b.append_data(&mut h, name, data)
}
