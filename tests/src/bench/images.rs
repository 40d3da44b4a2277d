//! Bench images: the shape of [`crate::TestImage::Big`] (busybox skeleton + applet links +
//! two 25 MiB random layers, gzip, OCI media types, ~51 MB compressed), but every layer of
//! image `i` differs from every layer of image `j`, so no runtime can reuse a blob or a
//! snapshot from an earlier iteration.

use std::path::Path;

use anyhow::{Context, Result};

use crate::bench::text_image;
use crate::images::layer::{Compression, Layer, LayerBuilder, random_bytes};
use crate::images::layout::{ConfigSpec, LayoutWriter};
use crate::images::recipes::{APPLETS, BIG_LAYER_MB};
use crate::images::{BuiltImage, PlatformImage, TestImage, busybox_path};

/// Seeds of bench image `index`: distinct per index and per layer.
fn seed(index: usize, layer: u64) -> u64 {
    0xbe7c_0000_0000 + ((index as u64) << 8) + layer
}

/// Builds bench image `index` as an OCI layout in `dir` (tag "1").
pub fn build_distinct(dir: &Path, index: usize) -> Result<BuiltImage> {
    let marker = format!("berth bench image {index}\n");
    let base = base_layer(index)?;
    let mut links = LayerBuilder::new().dir("bin", 0o755);
    for a in APPLETS {
        links = links.symlink(&format!("bin/{a}"), "busybox");
    }
    let links = links
        .dir("etc", 0o755)
        .file("etc/berth-bench-links", 0o644, marker);
    let mut layers = vec![
        base.build(Compression::Gzip)?,
        links.build(Compression::Gzip)?,
    ];
    for i in 0..2u64 {
        layers.push(
            LayerBuilder::new()
                .dir("big", 0o755)
                .file(
                    &format!("big/random{i}.bin"),
                    0o644,
                    random_bytes(seed(index, i), BIG_LAYER_MB << 20),
                )
                .build(Compression::Gzip)?,
        );
    }
    write_layout(&dir.join(format!("bench-{index}")), &layers)
}

/// Bench image `index` shaped like a real application image: the busybox base of
/// [`build_distinct`] plus [`text_image::TEXT_LAYERS`] gzip layers of source-like text,
/// several thousand files and about 80 MB uncompressed, distinct per index.
pub fn build_text(dir: &Path, index: usize) -> Result<BuiltImage> {
    let mut layers = vec![base_layer(index)?.build(Compression::Gzip)?];
    for l in 0..text_image::TEXT_LAYERS {
        layers.push(text_image::layer(seed(index, 16 + l as u64), l).build(Compression::Gzip)?);
    }
    write_layout(&dir.join(format!("bench-text-{index}")), &layers)
}

/// The busybox skeleton layer, with a marker naming the image index.
fn base_layer(index: usize) -> Result<LayerBuilder> {
    let bb_path = busybox_path();
    let busybox =
        std::fs::read(&bb_path).with_context(|| format!("read {bb_path:?} (busybox-static)"))?;
    let marker = format!("berth bench image {index}\n");
    Ok(LayerBuilder::new()
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .dir("tmp", 0o1777)
        .file("bin/busybox", 0o755, busybox)
        .file("etc/berth-bench-image", 0o644, marker))
}

/// Writes `layers` as a one-platform OCI layout at `layout` (tag "1").
fn write_layout(layout: &Path, layers: &[Layer]) -> Result<BuiltImage> {
    let w = LayoutWriter::create(layout)?;
    let m = w.put_image(layers, &ConfigSpec::linux("amd64"))?;
    let tag = "1".to_string();
    w.finish(&m.manifest, &tag)?;
    let platform = PlatformImage {
        os: m.spec.os.clone(),
        architecture: m.spec.architecture.clone(),
        manifest_digest: m.manifest.digest.clone(),
        config_digest: m.config.digest.clone(),
        layer_digests: m.layers.iter().map(|l| l.digest.clone()).collect(),
        diff_ids: m.diff_ids.clone(),
        size: m.layers.iter().map(|l| l.size).sum::<u64>() + m.config.size + m.manifest.size,
        user: None,
    };
    Ok(BuiltImage {
        kind: TestImage::Big,
        layout: layout.to_path_buf(),
        tag,
        digest: m.manifest.digest,
        is_index: false,
        platforms: vec![platform],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_never_collide() {
        let mut all = std::collections::HashSet::new();
        for i in 0..1000 {
            for l in 0..20 {
                assert!(all.insert(seed(i, l)));
            }
        }
    }
}
