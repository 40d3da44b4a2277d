//! `bench pods`: RunPodSandbox, StopPodSandbox and RemovePodSandbox latency on berthd and on
//! containerd (Debian containerd + runc + Debian CNI plugins + a pause image built offline
//! and pushed to the local registry), in one run.
//!
//! Pods are created in blocks of `block` per runtime, alternating which runtime goes first:
//! run `block` pods one after the other, then stop them, then remove them, each RPC timed
//! alone (wall clock, client already connected). Both runtimes get the same kind of pod: its
//! own network, IPC and UTS namespaces, a shared PID namespace (so each has a pause / init
//! process), a cgroup below a bench parent, no port mappings. Every pod's IP is checked
//! (untimed) so neither runtime is measured skipping the network.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::containerd::CriPods;
use crate::bench::env::{BenchEnv, EnvOptions};
use crate::bench::host_cleanup::{self, clean_host};
use crate::bench::stats::{Runtime, latency_table, percentile};
use crate::cri;
use crate::images::layer::{Compression, LayerBuilder};
use crate::images::layout::{ConfigSpec, LayoutWriter};
use crate::images::{BuiltImage, PlatformImage, TestImage, busybox_path};
use crate::pods::rpc;
use crate::{Registry, client};

/// berthd's bridge and subnet for the bench.
pub const BERTHD_BRIDGE: &str = "berthbench0";
pub const BERTHD_SUBNET: &str = "10.199.0.0/16";
/// containerd's CNI bridge and subnet (distinct from berthd's).
pub const CNI_BRIDGE: &str = "berthbcni0";
pub const CNI_SUBNET: &str = "10.198.0.0/16";
/// Pod cgroup parents (cgroupfs), removed after the run.
const BERTHD_CGROUP: &str = "/berth-bench-b";
const CONTAINERD_CGROUP: &str = "/berth-bench-cd";

#[derive(Debug, Clone)]
pub struct PodsOptions {
    /// Pods per runtime (each is run, stopped and removed once).
    pub pods: usize,
    /// Pods per block.
    pub block: usize,
    pub env: EnvOptions,
}

impl Default for PodsOptions {
    fn default() -> Self {
        Self {
            pods: 60,
            block: 10,
            env: EnvOptions::default(),
        }
    }
}

/// Latencies of one runtime.
#[derive(Debug, Clone, Default)]
pub struct PodTimes {
    pub run: Vec<Duration>,
    pub stop: Vec<Duration>,
    pub remove: Vec<Duration>,
}

/// The pause image: static busybox; PID 1 sleeps until SIGTERM/SIGINT.
pub fn build_pause(dir: &Path) -> Result<BuiltImage> {
    let bb_path = busybox_path();
    let busybox =
        std::fs::read(&bb_path).with_context(|| format!("read {bb_path:?} (busybox-static)"))?;
    let layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .dir("dev", 0o755)
        .dir("etc", 0o755)
        .dir("proc", 0o555)
        .dir("sys", 0o555)
        .file("bin/busybox", 0o755, busybox)
        .symlink("bin/sh", "busybox")
        .symlink("bin/sleep", "busybox")
        .build(Compression::Gzip)?;
    let mut spec = ConfigSpec::linux("amd64");
    spec.env = vec!["PATH=/bin".into()];
    spec.cmd = vec![
        "/bin/sh".into(),
        "-c".into(),
        "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done".into(),
    ];
    let layout = dir.join("pause");
    let w = LayoutWriter::create(&layout)?;
    let m = w.put_image(&[layer], &spec)?;
    let tag = "3.9".to_string();
    w.finish(&m.manifest, &tag)?;
    Ok(BuiltImage {
        kind: TestImage::Busybox,
        layout,
        tag,
        digest: m.manifest.digest.clone(),
        is_index: false,
        platforms: vec![PlatformImage {
            os: m.spec.os.clone(),
            architecture: m.spec.architecture.clone(),
            manifest_digest: m.manifest.digest.clone(),
            config_digest: m.config.digest.clone(),
            layer_digests: m.layers.iter().map(|l| l.digest.clone()).collect(),
            diff_ids: m.diff_ids.clone(),
            size: m.layers.iter().map(|l| l.size).sum::<u64>() + m.config.size + m.manifest.size,
            user: None,
        }],
    })
}

/// containerd's CNI network: bridge + host-local (state in `ipam_dir`) + portmap.
pub fn cni_conflist(ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "berth-bench",
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": CNI_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string(),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

fn pod_config(rt: Runtime, i: usize) -> cri::PodSandboxConfig {
    let name = format!("bench-{}-{i}", rt.name());
    let parent = match rt {
        Runtime::Berthd => BERTHD_CGROUP,
        Runtime::Containerd => CONTAINERD_CGROUP,
    };
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("{name}-uid"),
            namespace: "berth-bench".into(),
            attempt: 0,
        }),
        hostname: name,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs the pods phase and prints its report.
pub async fn run(opts: &PodsOptions) -> Result<(PodTimes, PodTimes)> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench pods cannot run: {why}");
    }
    let cni_bin = PathBuf::from("/usr/lib/cni");
    if !cni_bin.join("bridge").is_file() {
        bail!("bench pods: /usr/lib/cni/bridge missing (install containernetworking-plugins)");
    }
    if opts.pods == 0 || opts.block == 0 {
        bail!("--pods and --block must be at least 1");
    }
    let work = tempfile::Builder::new()
        .prefix("berth-bench-pods-")
        .tempdir()?;
    let registry = Registry::start().context("start docker-registry")?;
    let pause = registry.push_as(&build_pause(work.path())?, "pause", "3.9")?;
    let netns_before = host_cleanup::netns_list();
    let mut env_opts = opts.env.clone();
    env_opts.berthd_toml =
        format!("[network]\nbridge = {BERTHD_BRIDGE:?}\nsubnet = {BERTHD_SUBNET:?}\n");
    env_opts.containerd_pods = Some(CriPods {
        sandbox_image: pause.reference.clone(),
        cni_bin_dir: cni_bin,
        cni_conflist: cni_conflist(&work.path().join("cni-ipam")),
    });
    let env = BenchEnv::start(registry, env_opts).await?;
    let result = measure(&env, &pause.reference, opts).await;
    if result.is_err() {
        eprintln!("{}", env.log_tails());
    }
    let versions = (
        env.version(Runtime::Berthd).await,
        env.version(Runtime::Containerd).await,
    );
    // Whatever a failed run left: remove it over the CRI before shutting down.
    for rt in [Runtime::Berthd, Runtime::Containerd] {
        if let Ok(mut c) = runtime(&env, rt).await
            && let Ok(n) = rpc::remove_all(&mut c).await
            && n > 0
        {
            eprintln!("bench: removed {n} pods left on {}", rt.name());
        }
    }
    let cleanup = env.shutdown().await;
    let host = clean_host(&netns_before, &[BERTHD_CGROUP, CONTAINERD_CGROUP]);
    let (b, c) = result?;
    cleanup?;
    print_report(&b, &c, opts, versions, &host);
    Ok((b, c))
}

async fn runtime(env: &BenchEnv, rt: Runtime) -> Result<rpc::Runtime> {
    match rt {
        Runtime::Berthd => env.berthd.runtime().await,
        Runtime::Containerd => env.containerd.runtime().await,
    }
}

/// One block on one runtime: run `ids.len()` pods, then stop them, then remove them.
async fn block(
    c: &mut rpc::Runtime,
    rt: Runtime,
    first: usize,
    n: usize,
    times: Option<&mut PodTimes>,
) -> Result<()> {
    let mut local = PodTimes::default();
    let mut ids = Vec::new();
    for i in first..first + n {
        let cfg = pod_config(rt, i);
        let t = Instant::now();
        let id = rpc::run(c, &cfg)
            .await
            .with_context(|| format!("{} RunPodSandbox {i}", rt.name()))?;
        local.run.push(t.elapsed());
        let ip = rpc::ip(c, &id).await?;
        if ip.is_unspecified() {
            bail!("{} pod {id} has no IP", rt.name());
        }
        ids.push(id);
    }
    for id in &ids {
        let t = Instant::now();
        rpc::stop(c, id)
            .await
            .with_context(|| format!("{} StopPodSandbox {id}", rt.name()))?;
        local.stop.push(t.elapsed());
    }
    for id in &ids {
        let t = Instant::now();
        rpc::remove(c, id)
            .await
            .with_context(|| format!("{} RemovePodSandbox {id}", rt.name()))?;
        local.remove.push(t.elapsed());
    }
    if let Some(times) = times {
        times.run.extend(local.run);
        times.stop.extend(local.stop);
        times.remove.extend(local.remove);
    }
    Ok(())
}

async fn measure(env: &BenchEnv, pause: &str, opts: &PodsOptions) -> Result<(PodTimes, PodTimes)> {
    // containerd runs the pause image: pull it (untimed) so no RunPodSandbox pulls.
    let mut images = env.images(Runtime::Containerd).await?;
    client::pull(&mut images, pause, None)
        .await
        .context("containerd: pre-pull the pause image")?;
    let mut clients = [
        runtime(env, Runtime::Berthd).await?,
        runtime(env, Runtime::Containerd).await?,
    ];
    let idx = |rt: Runtime| match rt {
        Runtime::Berthd => 0,
        Runtime::Containerd => 1,
    };
    // Warm-up (untimed): first pod of each runtime creates its bridge, loads the pause
    // snapshot, starts plugins.
    for rt in Runtime::order(0) {
        block(&mut clients[idx(rt)], rt, 1_000_000, 2, None)
            .await
            .context("warm-up")?;
    }
    let mut times = [PodTimes::default(), PodTimes::default()];
    let blocks = opts.pods.div_ceil(opts.block);
    for b in 0..blocks {
        let n = opts.block.min(opts.pods - b * opts.block);
        for rt in Runtime::order(b) {
            let started = Instant::now();
            let i = idx(rt);
            block(&mut clients[i], rt, b * opts.block, n, Some(&mut times[i])).await?;
            eprintln!(
                "bench: block {b}: {} x{n} run+stop+remove in {:.2}s",
                rt.name(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let [b, c] = times;
    Ok((b, c))
}

/// The markdown table: p50 and p99 per operation and runtime, and the ratios.
pub fn table(b: &PodTimes, c: &PodTimes) -> String {
    latency_table(&[
        ("RunPodSandbox", &b.run, &c.run),
        ("StopPodSandbox", &b.stop, &c.stop),
        ("RemovePodSandbox", &b.remove, &c.remove),
    ])
}

fn print_report(
    b: &PodTimes,
    c: &PodTimes,
    opts: &PodsOptions,
    versions: (Result<String>, Result<String>),
    host: &[String],
) {
    let v = |r: Result<String>| r.unwrap_or_else(|e| format!("unknown ({e:#})"));
    println!();
    println!("berthd:     {}", v(versions.0));
    println!(
        "containerd: {} [{}], runc {}",
        v(versions.1),
        crate::bench::containerd::containerd_bin().display(),
        runc_version()
    );
    println!("workspace:  git {}", crate::bench::git_rev());
    println!(
        "pods: {} per runtime in blocks of {} (run all, stop all, remove all), alternating first runtime",
        opts.pods, opts.block
    );
    println!();
    print!("{}", table(b, c));
    let ratio = percentile(&b.run, 50.0).as_secs_f64()
        / percentile(&c.run, 50.0)
            .as_secs_f64()
            .max(f64::MIN_POSITIVE);
    let verdict = if ratio <= 1.0 / 3.0 {
        "target met (at most 1/3)"
    } else {
        "target MISSED (goal: at most 1/3)"
    };
    println!();
    println!("RunPodSandbox p50 ratio berthd/containerd: {ratio:.3} ({verdict})");
    println!();
    for l in host {
        println!("host cleanup: {l}");
    }
}

fn runc_version() -> String {
    Command::new("runc")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_is_valid() {
        let v: serde_json::Value =
            serde_json::from_str(&cni_conflist(Path::new("/tmp/x"))).unwrap();
        assert_eq!(v["plugins"][0]["bridge"], CNI_BRIDGE);
        assert!(CNI_BRIDGE.len() <= 15 && BERTHD_BRIDGE.len() <= 15);
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/tmp/x");
    }

    #[test]
    fn table_has_ratios() {
        let d = |m: u64| Duration::from_millis(m);
        let b = PodTimes {
            run: vec![d(10), d(20)],
            stop: vec![d(5)],
            remove: vec![d(5)],
        };
        let c = PodTimes {
            run: vec![d(40), d(80)],
            stop: vec![d(10)],
            remove: vec![d(20)],
        };
        let t = table(&b, &c);
        assert!(
            t.contains("| RunPodSandbox | 2 | 10.0 | 20.0 | 40.0 | 80.0 | 0.25 | 0.25 |"),
            "{t}"
        );
        assert!(
            t.contains("| RemovePodSandbox | 1 | 5.0 | 5.0 | 20.0 | 20.0 | 0.25 | 0.25 |"),
            "{t}"
        );
    }

    #[test]
    fn pause_image_builds() {
        let dir = tempfile::tempdir().unwrap();
        let img = build_pause(dir.path()).unwrap();
        assert!(img.layout.join("index.json").is_file());
        assert_eq!(img.tag, "3.9");
    }
}
