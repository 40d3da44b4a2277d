//! Container helpers for the integration tests and the containers bench: a berthd with its
//! own pod network and the busybox test image pulled from a local registry ([`CtrTest`]), a
//! `ContainerConfig` builder ([`spec::CtrSpec`]), CRI calls ([`rpc`]), CRI log files
//! ([`logs`]) and the container's cgroup directories.

pub mod env;
pub mod logs;
pub mod resources;
pub mod rpc;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};

use crate::cri;
use crate::pods::rpc::Runtime;
use crate::pods::{PodNet, PodSpec, leaks};
use crate::{PushedImage, Registry, TestImage, client, images};

pub use env::CtrEnv;
pub use spec::CtrSpec;

/// A network for container tests: bridge `berthc<pid%10000><n>`, subnet
/// `10.<250+pid%5>.<n>.0/24` (the pod tests use 10.200-249), cgroup parent
/// `/berth-ctest-<pid>-<n>`.
pub fn ctest_net() -> PodNet {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let second = 250 + (pid % 5) as u8;
    let third = 1 + (n % 120) as u8;
    PodNet {
        bridge: format!("berthc{:04}{:02}", pid % 10_000, n % 100),
        subnet: format!("10.{second}.{third}.0/24"),
        octets: [10, second, third],
        cgroup_parent: format!("/berth-ctest-{pid}-{n}"),
    }
}

/// A pod made by [`CtrTest::pod`]: its id, the config it was run with and its log dir.
#[derive(Debug, Clone)]
pub struct Pod {
    pub id: String,
    pub config: cri::PodSandboxConfig,
    pub log_dir: PathBuf,
}

impl Pod {
    /// The log file of a container created from `spec` in this pod.
    pub fn log_path(&self, spec: &CtrSpec) -> PathBuf {
        self.log_dir.join(&spec.config.log_path)
    }
}

/// berthd + its pod network + a registry holding the busybox image, already pulled.
pub struct CtrTest {
    pub t: CtrEnv,
    pub registry: Registry,
    pub image: PushedImage,
}

impl CtrTest {
    pub async fn start() -> Result<Self> {
        Self::start_with("", Vec::new()).await
    }

    /// With more berthd TOML (tables only) and env.
    pub async fn start_with(extra: &str, env: Vec<(String, String)>) -> Result<Self> {
        let registry = Registry::start().context("start docker-registry")?;
        let image = registry.push(&images::build(TestImage::Busybox)?)?;
        let t = CtrEnv::start(ctest_net(), extra, env).await?;
        let mut ic = t.d.images().await?;
        client::pull(&mut ic, &image.reference, None)
            .await
            .map_err(|s| anyhow::anyhow!("PullImage {}: {}", image.reference, s.message()))?;
        Ok(Self { t, registry, image })
    }

    pub async fn rt(&self) -> Result<Runtime> {
        self.t.rt().await
    }

    /// The image reference to put in container configs.
    pub fn image(&self) -> &str {
        &self.image.reference
    }

    /// A spec for this test's image.
    pub fn spec(&self, name: &str) -> CtrSpec {
        CtrSpec::new(name, self.image())
    }

    /// Runs a pod named `name` whose log directory is `<berthd dir>/logs/<name>`.
    pub async fn pod(&self, c: &mut Runtime, name: &str) -> Result<Pod> {
        self.pod_from(c, PodSpec::new(name, &self.t.net)).await
    }

    pub async fn pod_from(&self, c: &mut Runtime, spec: PodSpec) -> Result<Pod> {
        self.pod_with_handler(c, spec, "").await
    }

    /// A pod whose containers the runtime `handler` runs ("runc": berthd's runc handler).
    pub async fn pod_with_handler(
        &self,
        c: &mut Runtime,
        spec: PodSpec,
        handler: &str,
    ) -> Result<Pod> {
        let name = spec
            .config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let log_dir = self.t.d.dir().join("logs").join(&name);
        let spec = spec.log_directory(&log_dir.display().to_string());
        let id = self.t.run_with_handler(c, &spec, handler).await?;
        Ok(Pod {
            id,
            config: spec.build(),
            log_dir,
        })
    }

    /// CreateContainer.
    pub async fn create(&self, c: &mut Runtime, pod: &Pod, spec: &CtrSpec) -> Result<String> {
        rpc::create(c, &pod.id, &spec.config, &pod.config)
            .await
            .map_err(|s| {
                anyhow::anyhow!(
                    "CreateContainer {}: {:?}: {}",
                    spec.name(),
                    s.code(),
                    s.message()
                )
            })
    }

    /// CreateContainer + StartContainer.
    pub async fn run(&self, c: &mut Runtime, pod: &Pod, spec: &CtrSpec) -> Result<String> {
        let id = self.create(c, pod, spec).await?;
        rpc::start(c, &id).await.map_err(|s| {
            anyhow::anyhow!(
                "StartContainer {} ({id}): {:?}: {}",
                spec.name(),
                s.code(),
                s.message()
            )
        })?;
        Ok(id)
    }

    /// Removes every container and pod over the CRI, then fails on any leftover.
    pub async fn finish(self) -> Result<()> {
        let mut c = self.rt().await?;
        rpc::remove_all(&mut c).await?;
        drop(c);
        let CtrTest { t, registry, .. } = self;
        let res = t.finish().await;
        drop(registry);
        res
    }
}

/// True when /sys/fs/cgroup is a cgroup2 mount (unified hierarchy only).
pub fn cgroup_v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
}

/// The spec's `linux.cgroupsPath` from a bundle's config.json.
pub fn spec_cgroups_path(bundle: &Path) -> Result<String> {
    let f = bundle.join("config.json");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&f).with_context(|| format!("read {f:?}"))?)
            .with_context(|| format!("parse {f:?}"))?;
    v["linux"]["cgroupsPath"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("{f:?} has no linux.cgroupsPath"))
}

/// The directory of cgroup `path` in the hierarchy holding `controller` (v1:
/// `/sys/fs/cgroup/<controller>/<path>`; v2: `/sys/fs/cgroup/<path>`).
pub fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if cgroup_v2_only() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

/// Reads a file of the container's cgroup (e.g. `("memory", "memory.limit_in_bytes")`).
pub fn read_cgroup(controller: &str, path: &str, file: &str) -> Result<String> {
    let p = cgroup_dir(controller, path).join(file);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .with_context(|| format!("read {p:?}"))
}

/// Every hierarchy's directory of cgroup `path` that exists.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    leaks::cgroup_dirs(path)
}

/// A check that fails because of a known berth bug (reported, not yet fixed): printed as a
/// `KNOWN BUG:` line and tolerated, unless `BERTH_STRICT=1`, which makes it an error (run
/// strict to see whether the bug is fixed).
pub fn known_bug(ok: bool, what: &str) -> Result<()> {
    if ok {
        return Ok(());
    }
    if std::env::var("BERTH_STRICT").is_ok_and(|v| v == "1") {
        anyhow::bail!("known bug still present: {what}");
    }
    println!("KNOWN BUG: {what}");
    eprintln!("KNOWN BUG: {what}");
    Ok(())
}

/// Nanoseconds since the epoch (CRI timestamps).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}
