//! Fakes for component tests of the engine and of every front door (feature `testing`):
//! an in-memory image store, pod ports that keep a ledger of what is held (so tests can
//! prove that nothing leaks), a runtime whose processes are map entries, and [`Env`], which
//! opens an [`Engine`] on them in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_core::config::Config;
use berth_core::container::CgroupVersion;
use berth_core::container::ContainerConfig;
use berth_core::image::{FsUsage, Image, ImageError, ImageStore, RegistryAuth};
use berth_core::pod::ipam::{Allocations, Subnet};
use berth_core::pod::ports::*;
use berth_core::pod::record::{DnsConfig, NamespaceMode, NamespaceModes, PodNamespaces};
use berth_core::pod::sysctl::SysctlNs;
use berth_core::{Digest, Reference};

pub use runtime::{FakeRootfs, FakeRuntime, FakeStats, FakeStreams};

use crate::{ContainerPorts, ContainerSpec, Engine, PodPorts, PodSpec, RuntimeInfo};

#[derive(Default)]
pub struct FakeStore {
    pub images: Mutex<Vec<Image>>,
    pub last_auth: Mutex<Option<RegistryAuth>>,
}

pub fn image_for(r: &Reference) -> Image {
    Image {
        id: Digest::of(r.name().as_bytes()),
        repo_tags: r.tagged_name().into_iter().collect(),
        repo_digests: vec![],
        size: 1234,
        user: "1000:1000".into(),
        diff_ids: vec![],
        snapshots: vec![],
        config: serde_json::json!({"config": {"User": "1000:1000"}}),
        pinned: false,
    }
}

#[async_trait]
impl ImageStore for FakeStore {
    async fn pull(&self, r: &Reference, auth: Option<RegistryAuth>) -> Result<Image, ImageError> {
        *self.last_auth.lock().unwrap() = auth;
        if r.repository().ends_with("private") {
            return Err(ImageError::Unauthorized {
                registry: r.registry().into(),
                message: "authentication required".into(),
            });
        }
        let img = image_for(r);
        self.images.lock().unwrap().push(img.clone());
        Ok(img)
    }
    fn list(&self) -> Vec<Image> {
        self.images.lock().unwrap().clone()
    }
    fn find(&self, name: &str) -> Option<Image> {
        let full = name.parse::<Reference>().ok().and_then(|r| r.tagged_name());
        self.images
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.id.to_string() == name || Some(&i.repo_tags[0]) == full.as_ref())
            .cloned()
    }
    async fn remove(&self, name: &str) -> Result<(), ImageError> {
        if let Some(f) = self.find(name) {
            self.images.lock().unwrap().retain(|i| i.id != f.id);
        }
        Ok(())
    }
    fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        Ok(FsUsage {
            used_bytes: 4096,
            inodes_used: 3,
        })
    }
    fn root(&self) -> PathBuf {
        "/var/lib/berth/images".into()
    }
}

/// What the fake pod ports hold right now, and which port should fail.
#[derive(Default)]
pub struct Ledger {
    pub held: Mutex<BTreeSet<String>>,
    pub fail: Mutex<Option<&'static str>>,
    pub ipam: Mutex<Option<Allocations>>,
    pub sysctls: Mutex<Vec<String>>,
}

impl Ledger {
    pub(crate) fn acquire(&self, what: &'static str, key: String) -> Result<(), PodError> {
        if *self.fail.lock().unwrap() == Some(what) {
            return Err(PodError::failed(what, "fake failure"));
        }
        self.held.lock().unwrap().insert(format!("{what}:{key}"));
        Ok(())
    }
    fn release(&self, what: &str, key: &str) {
        self.held.lock().unwrap().remove(&format!("{what}:{key}"));
    }
    pub fn held(&self) -> BTreeSet<String> {
        self.held.lock().unwrap().clone()
    }
}

pub struct Fake(pub Arc<Ledger>);

#[async_trait]
impl Namespaces for Fake {
    async fn create(&self, req: &NamespaceRequest) -> Result<PodNamespaces, PodError> {
        self.0.acquire("ns", req.pod_id.clone())?;
        Ok(PodNamespaces {
            net: Some(req.pin_dir.join("net")),
            ipc: Some(req.pin_dir.join("ipc")),
            uts: Some(req.pin_dir.join("uts")),
            user: req.userns.as_ref().map(|_| req.pin_dir.join("user")),
            init_pid: (req.modes.pid == berth_core::pod::record::NamespaceMode::Pod)
                .then(std::process::id)
                .map(|p| p as i32),
            init_start_time: None,
        })
    }
    async fn apply_sysctls(
        &self,
        _: &PodNamespaces,
        s: &[(String, SysctlNs, String)],
    ) -> Result<(), PodError> {
        for (k, _, _) in s {
            if k == "net.unknown.key" {
                return Err(PodError::InvalidArgument(format!(
                    "sysctl {k} is not known to this kernel"
                )));
            }
            self.0.sysctls.lock().unwrap().push(k.clone());
        }
        Ok(())
    }
    async fn remove(&self, _: &PodNamespaces, pin_dir: &Path) -> Result<(), PodError> {
        let id = pin_dir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.0.release("ns", &id);
        Ok(())
    }
    fn init_alive(&self, _: &PodNamespaces) -> bool {
        true
    }
}

#[async_trait]
impl PodFiles for Fake {
    async fn prepare(&self, req: &PodFilesRequest) -> Result<(), PodError> {
        self.0.acquire("files", req.dir.display().to_string())
    }
    async fn write_hosts(&self, _: &Path, _: &str) -> Result<(), PodError> {
        Ok(())
    }
    async fn remove(&self, dir: &Path) -> Result<(), PodError> {
        self.0.release("files", &dir.display().to_string());
        Ok(())
    }
}

#[async_trait]
impl Cgroups for Fake {
    async fn create_pod(&self, path: &str) -> Result<(), PodError> {
        self.0.acquire("cgroup", path.to_string())
    }
    async fn remove_pod(&self, path: &str) -> Result<(), PodError> {
        let held: Vec<String> = self.0.held().into_iter().collect();
        for h in held {
            if h == format!("cgroup:{path}") || h.starts_with(&format!("cgroup:{path}/")) {
                self.0.held.lock().unwrap().remove(&h);
            }
        }
        Ok(())
    }
    async fn add_process(&self, path: &str, _pid: i32) -> Result<(), PodError> {
        assert!(
            self.0.held().contains(&format!("cgroup:{path}")),
            "join a cgroup that exists"
        );
        Ok(())
    }
}

#[async_trait]
impl Network for Fake {
    async fn setup(&self, req: &NetworkRequest) -> Result<NetworkResult, PodError> {
        self.0.acquire("net", req.pod_id.clone())?;
        let mut ipam = self.0.ipam.lock().unwrap();
        let a = ipam.get_or_insert_with(|| Allocations::new("10.88.0.0/16".parse().unwrap()));
        let ip: IpAddr = a
            .allocate(&req.pod_id)
            .map_err(|e| PodError::failed("ipam", e))?;
        Ok(NetworkResult {
            ip: Some(ip),
            additional_ips: vec![],
            ..Default::default()
        })
    }
    async fn teardown(&self, req: &NetworkRequest) -> Result<(), PodError> {
        self.0.release("net", &req.pod_id);
        let extra = format!("net:{}@", req.pod_id);
        self.0
            .held
            .lock()
            .unwrap()
            .retain(|h| !h.starts_with(&extra));
        if let Some(a) = self.0.ipam.lock().unwrap().as_mut() {
            a.release(&req.pod_id);
        }
        Ok(())
    }
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
    async fn set_pod_cidr(&self, cidr: Subnet) -> Result<(), PodError> {
        *self.0.ipam.lock().unwrap() = Some(Allocations::new(cidr));
        Ok(())
    }
    /// Held as `net:<pod>@<network>` until disconnected or torn down.
    async fn connect(
        &self,
        req: &NetworkRequest,
        network: &berth_core::pod::networks::PodNetwork,
    ) -> Result<berth_core::pod::networks::Attachment, PodError> {
        self.0
            .acquire("net", format!("{}@{}", req.pod_id, network.id))?;
        Ok(berth_core::pod::networks::Attachment {
            network: network.id.clone(),
            ifname: "eth1".into(),
            ..Default::default()
        })
    }
    async fn disconnect(&self, pod_id: &str, network: &str) -> Result<(), PodError> {
        self.0.release("net", &format!("{pod_id}@{network}"));
        Ok(())
    }
}

pub fn ports(ledger: &Arc<Ledger>) -> PodPorts {
    PodPorts {
        namespaces: Arc::new(Fake(ledger.clone())),
        files: Arc::new(Fake(ledger.clone())),
        cgroups: Arc::new(Fake(ledger.clone())),
        network: Arc::new(Fake(ledger.clone())),
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ledger: Arc<Ledger>,
    pub store: Arc<FakeStore>,
    pub runtime: Arc<FakeRuntime>,
    pub streams: Arc<FakeStreams>,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            ledger: Arc::new(Ledger::default()),
            store: Arc::new(FakeStore::default()),
            runtime: Arc::new(FakeRuntime::default()),
            streams: Arc::new(FakeStreams::default()),
        }
    }

    pub fn container_ports(&self) -> ContainerPorts {
        ContainerPorts {
            runtime: self.runtime.clone(),
            rootfs: Arc::new(FakeRootfs(self.ledger.clone())),
            streams: self.streams.clone(),
            cgroup_version: CgroupVersion::V1,
            stats: Arc::new(FakeStats::default()),
        }
    }

    pub fn config(&self) -> Config {
        Config {
            root_dir: self.dir.path().join("root"),
            run_dir: self.dir.path().join("run"),
            ..Default::default()
        }
    }

    /// What Status reports of berth's own handler: every optional feature.
    pub fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            version: "test".into(),
            config: self.config(),
            handler_features: [(
                "berth".to_string(),
                berth_core::handler_features::HandlerFeatures {
                    recursive_read_only_mounts: true,
                    user_namespaces: true,
                },
            )]
            .into(),
        }
    }

    /// An engine on the fakes; `fault` names the step after which running a pod fails.
    pub async fn engine(&self, fault: Option<&str>) -> Arc<Engine> {
        Engine::open(
            self.store.clone(),
            ports(&self.ledger),
            self.container_ports(),
            self.info(),
            fault.map(String::from),
        )
        .await
        .unwrap()
    }

    /// An engine on the fakes with `busybox:latest` in the fake store.
    pub async fn engine_with_busybox(&self) -> Arc<Engine> {
        self.store
            .pull(&"busybox:latest".parse().unwrap(), None)
            .await
            .unwrap();
        self.engine(None).await
    }
}

/// A pod of namespace `docker` with its own network and IPC, each container with its own
/// PID namespace; tests change what they need with `..pod_spec(name)`.
pub fn pod_spec(name: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        namespace: "docker".into(),
        uid: format!("uid-{name}"),
        attempt: 0,
        runtime_handler: String::new(),
        hostname: String::new(),
        log_directory: String::new(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        modes: NamespaceModes {
            network: NamespaceMode::Pod,
            pid: NamespaceMode::Container,
            ipc: NamespaceMode::Pod,
        },
        userns: None,
        port_mappings: Vec::new(),
        dns: DnsConfig::default(),
        sysctls: BTreeMap::new(),
        cgroup_parent: String::new(),
        net: Default::default(),
        config: serde_json::json!({"name": name}),
    }
}

/// A busybox container running `args` in pod `pod_id`, without a restart policy (CRI's).
pub fn container_spec(pod_id: &str, name: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        pod_id: pod_id.into(),
        config: ContainerConfig {
            name: name.into(),
            image: "busybox:latest".into(),
            command: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        log_path: String::new(),
        pod_privileged: false,
        restart: None,
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}
