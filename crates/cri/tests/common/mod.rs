//! Fakes for the component tests: an in-memory image store and pod ports that keep a
//! ledger of what is held, so tests can prove that nothing leaks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_api::cri::image_service_client::ImageServiceClient;
use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use berth_core::config::Config;
use berth_core::container::CgroupVersion;
use berth_core::image::{FsUsage, Image, ImageError, ImageStore, RegistryAuth};
use berth_core::pod::ipam::{Allocations, Subnet};
use berth_core::pod::ports::*;
use berth_core::pod::record::PodNamespaces;
use berth_core::pod::sysctl::SysctlNs;
use berth_core::runtime::*;
use berth_core::{Digest, Reference};
use berth_cri::Cri;
use berth_engine::{ContainerPorts, Engine, PodPorts, RuntimeInfo};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Server};

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
    fn acquire(&self, what: &'static str, key: String) -> Result<(), PodError> {
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
        })
    }
    async fn teardown(&self, req: &NetworkRequest) -> Result<(), PodError> {
        self.0.release("net", &req.pod_id);
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
}

pub fn ports(ledger: &Arc<Ledger>) -> PodPorts {
    PodPorts {
        namespaces: Arc::new(Fake(ledger.clone())),
        files: Arc::new(Fake(ledger.clone())),
        cgroups: Arc::new(Fake(ledger.clone())),
        network: Arc::new(Fake(ledger.clone())),
    }
}

/// A fake runtime: processes are entries in a map; `sleep`-like programs run until killed,
/// anything else exits 0 at start; a program named `missing` cannot be exec'd.
#[derive(Default)]
pub struct FakeRuntime {
    pub procs: Mutex<HashMap<String, ProcessState>>,
    pub args: Mutex<HashMap<String, Vec<String>>>,
    pub released_pods: Mutex<Vec<String>>,
    pub updates: Mutex<Vec<serde_json::Value>>,
}

fn state(status: ProcessStatus) -> ProcessState {
    ProcessState {
        status,
        pid: Some(4242),
        started_at: None,
        finished_at: None,
        exit_code: None,
        oom_killed: false,
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn create(&self, req: &CreateRequest) -> Result<ProcessState, RuntimeError> {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(req.bundle.join("config.json")).unwrap())
                .unwrap();
        let args: Vec<String> = serde_json::from_value(spec["process"]["args"].clone()).unwrap();
        self.args
            .lock()
            .unwrap()
            .insert(req.container_id.clone(), args);
        let st = state(ProcessStatus::Created);
        self.procs
            .lock()
            .unwrap()
            .insert(req.container_id.clone(), st.clone());
        Ok(st)
    }
    async fn start(&self, _: &str, id: &str) -> Result<ProcessState, RuntimeError> {
        let args = self
            .args
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default();
        if args.first().map(String::as_str) == Some("missing") {
            return Err(RuntimeError::failed(
                "exec",
                "exec \"missing\": no such file or directory",
            ));
        }
        let mut procs = self.procs.lock().unwrap();
        let st = procs
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        st.started_at = Some(1);
        if args.iter().any(|a| a.contains("sleep")) {
            st.status = ProcessStatus::Running;
        } else {
            st.status = ProcessStatus::Exited;
            st.exit_code = Some(if args.iter().any(|a| a == "false") {
                1
            } else {
                0
            });
            st.finished_at = Some(2);
        }
        Ok(st.clone())
    }
    async fn kill(&self, _: &str, id: &str, signal: i32, _: bool) -> Result<(), RuntimeError> {
        let mut procs = self.procs.lock().unwrap();
        let st = procs
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if st.status != ProcessStatus::Exited {
            st.status = ProcessStatus::Exited;
            st.exit_code = Some(128 + signal);
            st.finished_at = Some(3);
        }
        Ok(())
    }
    async fn wait(&self, p: &str, id: &str, _: Duration) -> Result<ProcessState, RuntimeError> {
        self.state(p, id).await
    }
    async fn state(&self, _: &str, id: &str) -> Result<ProcessState, RuntimeError> {
        Ok(self
            .procs
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_else(|| state(ProcessStatus::Unknown)))
    }
    async fn delete(&self, _: &str, id: &str) -> Result<(), RuntimeError> {
        self.procs.lock().unwrap().remove(id);
        Ok(())
    }
    async fn exec_sync(&self, _: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        let args: Vec<String> = serde_json::from_value(req.process["args"].clone()).unwrap();
        Ok(ExecOutput {
            stdout: args.join(" ").into_bytes(),
            stderr: vec![],
            exit_code: 0,
            timed_out: false,
        })
    }
    async fn update(&self, _: &str, _: &str, r: &Resources) -> Result<(), RuntimeError> {
        self.updates.lock().unwrap().push(r.clone());
        Ok(())
    }
    async fn reopen_log(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn exec_stream(
        &self,
        _: &str,
        req: &berth_core::stream::ExecStreamRequest,
    ) -> Result<berth_core::stream::StdioSession, RuntimeError> {
        fake_session(format!("exec {}\n", req.process["args"]).into_bytes())
    }
    async fn attach(
        &self,
        _: &str,
        req: &berth_core::stream::AttachRequest,
    ) -> Result<berth_core::stream::StdioSession, RuntimeError> {
        fake_session(format!("attach {}\n", req.container_id).into_bytes())
    }
    async fn release_pod(&self, pod_id: &str) -> Result<(), RuntimeError> {
        self.released_pods.lock().unwrap().push(pod_id.into());
        Ok(())
    }
}

/// A fake rootfs: a directory with a passwd file; the ledger tracks it.
pub struct FakeRootfs(pub Arc<Ledger>);

#[async_trait]
impl Rootfs for FakeRootfs {
    async fn mount(&self, dir: &Path, _: &[PathBuf], _: bool) -> Result<PathBuf, RuntimeError> {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        self.0
            .held
            .lock()
            .unwrap()
            .insert(format!("rootfs:{}", dir.display()));
        Ok(rootfs)
    }
    async fn remove(&self, dir: &Path) -> Result<(), RuntimeError> {
        let _ = std::fs::remove_dir_all(dir);
        self.0
            .held
            .lock()
            .unwrap()
            .remove(&format!("rootfs:{}", dir.display()));
        Ok(())
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

    pub async fn cri(&self, fault: Option<&str>) -> Arc<Cri> {
        let engine = Engine::open(
            self.store.clone(),
            ports(&self.ledger),
            self.container_ports(),
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
            },
            fault.map(String::from),
        )
        .await
        .unwrap();
        Cri::new(engine)
    }

    pub async fn clients(
        &self,
        fault: Option<&str>,
    ) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
        serve(self.cri(fault).await).await
    }
}

pub async fn serve(cri: Arc<Cri>) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
    let (rt, img) = cri.services();
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        Server::builder()
            .add_service(rt)
            .add_service(img)
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
    });
    let mut client_io = Some(client_io);
    let ch = Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("connected once already"))
            }
        }))
        .await
        .unwrap();
    (
        RuntimeServiceClient::new(ch.clone()),
        ImageServiceClient::new(ch),
    )
}

/// A session whose stdout holds `out` and whose process "exits" 0 at once.
fn fake_session(out: Vec<u8>) -> Result<berth_core::stream::StdioSession, RuntimeError> {
    use std::io::Write;
    let (r, mut w) = std::io::pipe().unwrap();
    w.write_all(&out).unwrap();
    drop(w);
    Ok(berth_core::stream::StdioSession {
        stdin: None,
        stdout: Some(r.into()),
        stderr: None,
        resize: None,
        exit: Box::pin(async { Ok(0) }),
    })
}

/// Records what the streaming RPCs registered; answers `http://streams.test/<n>`.
#[derive(Default)]
pub struct FakeStreams {
    pub registered: Mutex<Vec<berth_core::stream::StreamRequest>>,
}

impl berth_core::stream::StreamService for FakeStreams {
    fn register(
        &self,
        req: berth_core::stream::StreamRequest,
    ) -> Result<String, berth_core::stream::StreamError> {
        let mut r = self.registered.lock().unwrap();
        r.push(req);
        Ok(format!("http://streams.test/{}", r.len()))
    }
}

/// Stats that grow by one second of CPU and 1 MiB of memory per read.
#[derive(Default)]
pub struct FakeStats(std::sync::atomic::AtomicU64);

impl berth_core::stats::StatsReader for FakeStats {
    fn cgroup(
        &self,
        _: &str,
    ) -> Result<berth_core::stats::CgroupUsage, berth_core::stats::StatsError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Ok(berth_core::stats::CgroupUsage {
            cpu_usage_ns: Some(n * 1_000_000_000),
            memory: Some(berth_core::stats::MemoryUsage {
                usage_bytes: n << 20,
                working_set_bytes: n << 20,
                ..Default::default()
            }),
            pids: Some(1),
        })
    }
    fn dir_usage(
        &self,
        _: &std::path::Path,
    ) -> Result<berth_core::stats::DirUsage, berth_core::stats::StatsError> {
        Ok(berth_core::stats::DirUsage {
            used_bytes: 4096,
            inodes_used: 1,
        })
    }
    fn network(
        &self,
        _: &std::path::Path,
    ) -> Result<Vec<berth_core::stats::InterfaceUsage>, berth_core::stats::StatsError> {
        Ok(Vec::new())
    }
}
