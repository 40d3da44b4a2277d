//! `bench pull`: PullImage of N distinct ~50 MB images on berthd and containerd, alternating
//! which goes first, wall clock around the RPC (both unpack as part of the pull).
//!
//! `--image text` pulls an image shaped like real ones instead (thousands of small text
//! files, ~80 MB uncompressed). `--writer-mb N` writes N MB to a file on the same
//! filesystem right before each timed pull, without fsync and without sync() before the
//! pull: a pull that flushed the whole filesystem (syncfs) would pay for that data.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::env::{BenchEnv, EnvOptions};
use crate::bench::stats::{Comparison, Runtime};
use crate::{PushedImage, Registry, TestImage, client};

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub iterations: usize,
    /// MB another writer leaves dirty right before each timed pull (0: none).
    pub writer_mb: usize,
    /// The source-like text image instead of the 4-layer random-data one.
    pub text_image: bool,
    pub env: EnvOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            iterations: 5,
            writer_mb: 0,
            text_image: false,
            env: EnvOptions::default(),
        }
    }
}

/// Runs the pull phase and prints its report; returns the measured comparison.
pub async fn run(opts: &PullOptions) -> Result<Comparison> {
    if let Some(why) = crate::skip::missing(&["docker-registry", "skopeo"], true) {
        bail!("bench pull cannot run: {why}");
    }
    if opts.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let registry = Registry::start().context("start docker-registry")?;
    let (warmup, images) = push_images(&registry, opts)?;
    let env = BenchEnv::start(registry, opts.env.clone()).await?;
    let result = measure(&env, &warmup, &images, opts).await;
    if result.is_err() {
        eprintln!("{}", env.log_tails());
    }
    let versions = (
        env.version(Runtime::Berthd).await,
        env.version(Runtime::Containerd).await,
    );
    let pulled = env.berthd.log_tail(10_000);
    // Evidence that both unpacked: each store should hold ~2x the compressed bytes per image.
    let disk = (
        crate::dir_size(&env.berthd.root_dir),
        crate::dir_size(&env.containerd.dir().join("root")),
    );
    let cleanup = env.shutdown().await;
    let cmp = result?;
    cleanup?;
    print_report(&cmp, versions, disk, &pulled);
    Ok(cmp)
}

/// Builds and pushes the warm-up image (the small busybox test image) and `n` distinct
/// bench images; the layouts are deleted once pushed (the registry holds the blobs).
fn push_images(reg: &Registry, opts: &PullOptions) -> Result<(PushedImage, Vec<PushedImage>)> {
    let warmup = reg.push(&crate::images::build(TestImage::Busybox)?)?;
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-images-")
        .tempdir()?;
    let mut out = Vec::new();
    for i in 0..opts.iterations {
        let started = Instant::now();
        let built = if opts.text_image {
            crate::bench::images::build_text(tmp.path(), i)?
        } else {
            crate::bench::images::build_distinct(tmp.path(), i)?
        };
        let pushed = reg.push_as(&built, &format!("bench/pull{i}"), "1")?;
        std::fs::remove_dir_all(&built.layout).context("remove pushed layout")?;
        eprintln!(
            "bench: image {i}: {} ({:.1} MB) built and pushed in {:.1}s",
            pushed.reference,
            size_of(&pushed) as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        out.push(pushed);
    }
    Ok((warmup, out))
}

fn size_of(img: &PushedImage) -> u64 {
    img.built.platforms.first().map(|p| p.size).unwrap_or(0)
}

async fn pull_timed(
    env: &BenchEnv,
    rt: Runtime,
    img: &PushedImage,
    writer_mb: usize,
) -> Result<Duration> {
    // Flush dirty pages first (untimed), so each pull starts from the same clean state:
    // neither the previous pull's nor the registry push's unflushed data is left.
    tokio::task::spawn_blocking(nix::unistd::sync)
        .await
        .context("sync")?;
    // Connect before starting the clock: the socket handshake is not part of a pull.
    let mut c = env.images(rt).await?;
    // The other writer's data, left dirty in the page cache with no sync() after it.
    let scratch = env.berthd.root_dir.with_file_name("other-writer.bin");
    if writer_mb > 0 {
        let (path, mb) = (scratch.clone(), writer_mb);
        tokio::task::spawn_blocking(move || write_unsynced(&path, mb))
            .await
            .context("writer")??;
    }
    let started = Instant::now();
    let pulled = client::pull(&mut c, &img.reference, None).await;
    let took = started.elapsed();
    if writer_mb > 0 {
        std::fs::remove_file(&scratch).with_context(|| format!("remove {scratch:?}"))?;
    }
    let id = pulled.with_context(|| format!("{} PullImage {}", rt.name(), img.reference))?;
    // containerd answers the image id (config digest) too; anything else is a wrong pull.
    if id != img.id {
        bail!(
            "{} pulled {}: answered {id}, expected {}",
            rt.name(),
            img.reference,
            img.id
        );
    }
    Ok(took)
}

/// Writes `mb` MB (non-zero bytes) to `path` through the page cache: no fsync, no sync.
fn write_unsynced(path: &std::path::Path, mb: usize) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).with_context(|| format!("create {path:?}"))?;
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..(mb * 1_000_000).div_ceil(chunk.len()) {
        f.write_all(&chunk)
            .with_context(|| format!("write {path:?}"))?;
    }
    Ok(())
}

async fn measure(
    env: &BenchEnv,
    warmup: &PushedImage,
    images: &[PushedImage],
    opts: &PullOptions,
) -> Result<Comparison> {
    for rt in Runtime::order(0) {
        let d = pull_timed(env, rt, warmup, 0)
            .await
            .context("warm-up pull")?;
        eprintln!(
            "bench: warm-up pull on {}: {:.3}s",
            rt.name(),
            d.as_secs_f64()
        );
    }
    let mb = images.first().map(size_of).unwrap_or(0) as f64 / 1e6;
    let shape = if opts.text_image {
        format!(
            "{} gzip layers, thousands of source-like text files, ~80 MB unpacked",
            1 + crate::bench::text_image::TEXT_LAYERS
        )
    } else {
        "4 gzip layers".to_string()
    };
    let writer = match opts.writer_mb {
        0 => String::new(),
        n => format!(", after another writer left {n} MB unsynced on the same filesystem"),
    };
    let mut cmp = Comparison::new(format!(
        "PullImage of a distinct {mb:.1} MB image ({shape}) per iteration{writer}, wall clock"
    ));
    for (i, img) in images.iter().enumerate() {
        let order = Runtime::order(i);
        cmp.first.push(order[0]);
        for rt in order {
            let d = pull_timed(env, rt, img, opts.writer_mb).await?;
            eprintln!(
                "bench: iteration {i}: {} {:.3}s",
                rt.name(),
                d.as_secs_f64()
            );
            cmp.record(rt, d);
        }
    }
    Ok(cmp)
}

fn print_report(
    cmp: &Comparison,
    versions: (Result<String>, Result<String>),
    disk: (u64, u64),
    berthd_log: &str,
) {
    let v = |r: Result<String>| r.unwrap_or_else(|e| format!("unknown ({e:#})"));
    println!();
    let bin = crate::berthd::berthd_bin()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("berthd:     {} [{bin}]", v(versions.0));
    println!(
        "containerd: {} [{}]",
        v(versions.1),
        crate::bench::containerd::containerd_bin().display()
    );
    println!("workspace:  git {}", crate::bench::git_rev());
    println!("load:       {}", crate::bench::loadavg());
    println!();
    print!("{}", cmp.table());
    println!();
    let ratio = cmp.ratio();
    let verdict = if ratio <= 1.0 {
        "target met: berthd at least as fast as containerd"
    } else {
        "target MISSED: berthd slower than containerd"
    };
    println!("ratio berthd/containerd (median): {ratio:.2} ({verdict})");
    println!(
        "store size after all pulls (blobs + unpacked): berthd {:.1} MB, containerd {:.1} MB",
        disk.0 as f64 / 1e6,
        disk.1 as f64 / 1e6
    );
    let own: Vec<&str> = berthd_log
        .lines()
        .filter(|l| l.contains("pulled image"))
        .collect();
    if !own.is_empty() {
        println!();
        println!("berthd's own pull timings (log):");
        for l in own {
            println!("  {l}");
        }
    }
}
