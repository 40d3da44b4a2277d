//! The test images, each built from the host's static busybox.

use anyhow::{Context, Result};

use super::layer::{Compression, Layer, LayerBuilder, random_bytes};
use super::layout::{ConfigSpec, LayoutWriter, WrittenManifest};

/// Applets linked to /bin/busybox in every image.
pub const APPLETS: &[&str] = &[
    "sh", "ash", "ls", "cat", "echo", "sleep", "true", "false", "id", "env", "mkdir", "rm", "cp",
    "mv", "ps", "grep", "wc", "head", "tail", "touch", "date", "hostname", "uname", "printf",
    "test", "[", "kill", "mount", "umount", "chmod", "chown", "ln", "pwd", "sync", "stat", "find",
    "sed", "awk", "whoami", "ip", "ifconfig", "ping", "nc", "wget", "top", "dd", "df", "du",
    "free", "nslookup", "readlink", "seq", "stty", "tee", "timeout", "yes",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
// tester is a member of staff: SupplementalGroupsPolicy Merge adds it, Strict leaves it out.
const GROUP: &str = "root:x:0:\nstaff:x:50:tester\ntester:x:1000:\nnogroup:x:65534:\n";

/// Layer 1: the filesystem skeleton and the busybox binary.
fn base_layer(busybox: &[u8]) -> LayerBuilder {
    LayerBuilder::new()
        .dir("bin", 0o755)
        .dir("dev", 0o755)
        .dir("etc", 0o755)
        .dir("home", 0o755)
        .dir("proc", 0o555)
        .dir("root", 0o700)
        .dir("sys", 0o555)
        .dir("tmp", 0o1777)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .dir("var", 0o755)
        .file("bin/busybox", 0o755, busybox.to_vec())
}

/// Layer 2: applet links and the user database.
fn links_layer() -> LayerBuilder {
    let mut l = LayerBuilder::new().dir("bin", 0o755);
    for a in APPLETS {
        l = l.symlink(&format!("bin/{a}"), "busybox");
    }
    l.dir("etc", 0o755)
        .file("etc/passwd", 0o644, PASSWD)
        .file("etc/group", 0o644, GROUP)
        .dir("home/tester", 0o755)
}

/// The busybox layers (skeleton + links), compressed with `c`.
pub fn busybox_layers(busybox: &[u8], c: Compression) -> Result<Vec<Layer>> {
    Ok(vec![base_layer(busybox).build(c)?, links_layer().build(c)?])
}

fn marker(name: &str) -> LayerBuilder {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/berth-test-image", 0o644, format!("{name}\n"))
}

/// Writes one single-manifest image.
fn single(w: &LayoutWriter, layers: Vec<Layer>, spec: ConfigSpec) -> Result<WrittenManifest> {
    w.put_image(&layers, &spec)
}

pub fn busybox(w: &LayoutWriter, bb: &[u8]) -> Result<WrittenManifest> {
    let mut layers = busybox_layers(bb, Compression::Gzip)?;
    layers.push(marker("busybox").build(Compression::Gzip)?);
    single(w, layers, ConfigSpec::linux("amd64"))
}

pub fn zstd(w: &LayoutWriter, bb: &[u8]) -> Result<WrittenManifest> {
    let mut layers = busybox_layers(bb, Compression::Zstd)?;
    layers.push(marker("zstd").build(Compression::Zstd)?);
    single(w, layers, ConfigSpec::linux("amd64"))
}

pub fn user(w: &LayoutWriter, bb: &[u8]) -> Result<WrittenManifest> {
    let mut layers = busybox_layers(bb, Compression::Gzip)?;
    layers.push(
        marker("user")
            .dir("home/tester", 0o755)
            .file_owned("home/tester/owned", 0o644, "mine\n", 1000)
            .build(Compression::Gzip)?,
    );
    let mut spec = ConfigSpec::linux("amd64");
    spec.user = Some("1000:1000".into());
    single(w, layers, spec)
}

pub fn volume(w: &LayoutWriter, bb: &[u8]) -> Result<WrittenManifest> {
    let mut layers = busybox_layers(bb, Compression::Gzip)?;
    layers.push(
        marker("volume")
            .dir("data", 0o750)
            .file_owned("data/seed", 0o644, "seeded\n", 1000)
            .build(Compression::Gzip)?,
    );
    let mut spec = ConfigSpec::linux("amd64");
    spec.volumes = vec!["/data".into()];
    single(w, layers, spec)
}

pub fn whiteout(w: &LayoutWriter, bb: &[u8]) -> Result<WrittenManifest> {
    let mut layers = busybox_layers(bb, Compression::Gzip)?;
    layers.push(
        LayerBuilder::new()
            .dir("a", 0o755)
            .file("a/x", 0o644, "x\n")
            .file("a/keep", 0o644, "keep\n")
            .dir("b", 0o755)
            .file("b/y", 0o644, "y\n")
            .build(Compression::Gzip)?,
    );
    layers.push(
        LayerBuilder::new()
            .dir("a", 0o755)
            .file("a/.wh.x", 0o644, Vec::new())
            .dir("b", 0o755)
            .file("b/.wh..wh..opq", 0o644, Vec::new())
            .file("b/z", 0o644, "z\n")
            .build(Compression::Gzip)?,
    );
    single(w, layers, ConfigSpec::linux("amd64"))
}

/// Megabytes of random data in each of the big image's two extra layers.
pub const BIG_LAYER_MB: usize = 25;

pub fn big(w: &LayoutWriter, bb: &[u8]) -> Result<WrittenManifest> {
    let mut layers = busybox_layers(bb, Compression::Gzip)?;
    for i in 0..2u64 {
        layers.push(
            LayerBuilder::new()
                .dir("big", 0o755)
                .file(
                    &format!("big/random{i}.bin"),
                    0o644,
                    random_bytes(0x5eed_0000 + i, BIG_LAYER_MB << 20),
                )
                .build(Compression::Gzip)?,
        );
    }
    single(w, layers, ConfigSpec::linux("amd64"))
}

/// Two platforms; the layer holding `/platform` differs between them.
pub fn multiarch(w: &LayoutWriter, bb: &[u8]) -> Result<Vec<WrittenManifest>> {
    let mut out = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let mut layers = busybox_layers(bb, Compression::Gzip)?;
        layers.push(
            LayerBuilder::new()
                .file("platform", 0o644, format!("{arch}\n"))
                .build(Compression::Gzip)?,
        );
        let mut spec = ConfigSpec::linux(arch);
        spec.variant = variant.map(String::from);
        out.push(
            w.put_image(&layers, &spec)
                .with_context(|| format!("multiarch {arch}"))?,
        );
    }
    Ok(out)
}
