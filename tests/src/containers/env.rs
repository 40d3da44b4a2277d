//! The berthd a container test runs against, and the checks that it left nothing behind.
//!
//! Like [`crate::pods::PodTest`], but berthd's run dir is a short temp dir in /run
//! (`/run/bcXXXXXX`): a pod monitor's socket is `<run_dir>/pods/<64 hex>/monitor/monitor.sock`,
//! and with the harness's `/tmp/berthd-test-XXXXXX/run` that path exceeds the 108 bytes a
//! unix socket address holds, so every CreateContainer would fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};

use crate::cri::runtime_service_client::RuntimeServiceClient;
use crate::pods::rpc::{self, Runtime};
use crate::pods::{PodNet, PodSpec, host, leaks};
use crate::{Berthd, BerthdOptions, procs};

pub struct CtrEnv {
    pub d: Berthd,
    pub net: PodNet,
    pub root_dir: PathBuf,
    pub run_dir: PathBuf,
    run: Option<tempfile::TempDir>,
    ids: Mutex<Vec<String>>,
}

impl CtrEnv {
    /// berthd on `net`, with `extra` TOML tables (after `[network]`) and `env`.
    pub async fn start(net: PodNet, extra: &str, env: Vec<(String, String)>) -> Result<Self> {
        let run = tempfile::Builder::new().prefix("bc").tempdir_in("/run")?;
        let run_dir = run.path().to_path_buf();
        let opts = BerthdOptions {
            extra_toml: format!(
                "run_dir = {:?}\n[grpc]\nsocket = {:?}\n{}{extra}",
                run_dir.display().to_string(),
                run_dir.join("berth.sock").display().to_string(),
                net.toml()
            ),
            env,
        };
        let d = Berthd::start_with(opts).await?;
        Ok(Self {
            root_dir: d.root_dir.clone(),
            run_dir,
            d,
            net,
            run: Some(run),
            ids: Mutex::new(Vec::new()),
        })
    }

    pub async fn rt(&self) -> Result<Runtime> {
        self.d.runtime().await
    }

    pub fn track(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// RunPodSandbox; the id is remembered for the leak checks.
    pub async fn run(&self, c: &mut Runtime, spec: &PodSpec) -> Result<String> {
        let id = rpc::run(c, &spec.config)
            .await
            .map_err(|s| anyhow::anyhow!("RunPodSandbox: {:?}: {}", s.code(), s.message()))?;
        self.track(&id);
        Ok(id)
    }

    /// RunPodSandbox with a runtime handler ("runc", "berth", "" for the default).
    pub async fn run_with_handler(
        &self,
        c: &mut Runtime,
        spec: &PodSpec,
        handler: &str,
    ) -> Result<String> {
        let req = crate::cri::RunPodSandboxRequest {
            config: Some(spec.config.clone()),
            runtime_handler: handler.into(),
        };
        let id = c
            .run_pod_sandbox(req)
            .await
            .map_err(|s| {
                anyhow::anyhow!(
                    "RunPodSandbox (handler {handler:?}): {:?}: {}",
                    s.code(),
                    s.message()
                )
            })?
            .into_inner()
            .pod_sandbox_id;
        self.track(&id);
        Ok(id)
    }

    pub fn pod_dir(&self, id: &str) -> PathBuf {
        host::pod_dir(&self.run_dir, id)
    }

    /// Everything the test's pods and containers could have left on the host.
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [self.d.dir(), self.run_dir.as_path()] {
            for m in procs::mounts_under(dir) {
                out.push(format!("mount {m}"));
            }
        }
        for sub in ["pods", "containers"] {
            if let Ok(rd) = std::fs::read_dir(self.run_dir.join(sub)) {
                for e in rd.flatten() {
                    out.push(format!("run dir entry {}", e.path().display()));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.root_dir.join("containers")) {
            for e in rd.flatten() {
                out.push(format!("bundle {}", e.path().display()));
            }
        }
        // The bridge and the table are berthd's while it runs (kept with no pod); they must
        // be gone once it has stopped (`network.remove_on_exit`).
        let stopped = self.d.pid().is_none();
        if stopped && leaks::link_exists(&self.net.bridge) {
            out.push(format!("bridge {}", self.net.bridge));
        }
        for id in self.ids() {
            let veth = leaks::veth_name(&id);
            if leaks::link_exists(&veth) {
                out.push(format!("veth {veth} (pod {id})"));
            }
        }
        if stopped && leaks::nft_table_exists(&self.net.nft_table()) {
            out.push(format!("nft table inet {}", self.net.nft_table()));
        }
        for dir in leaks::cgroup_dirs(&self.net.cgroup_parent) {
            for child in subdirs(&dir) {
                out.push(format!("cgroup {}", child.display()));
            }
        }
        match leaks::ipam_held(&self.root_dir.join("network/ipam-v4.json")) {
            Ok(held) => out.extend(
                held.into_iter()
                    .map(|(ip, o)| format!("IP {ip} held by {o}")),
            ),
            Err(e) => out.push(format!("ipam file: {e:#}")),
        }
        let berthd = self.d.pid().map(|p| p as i32);
        for p in procs::marked(self.d.mark()) {
            if Some(p.pid) != berthd {
                out.push(format!("process {p}"));
            }
        }
        out
    }

    /// `leakcheck.sh` lines naming anything of this test.
    pub fn leakcheck(&self) -> Vec<String> {
        let Some(script) = leaks::leakcheck_script() else {
            return Vec::new();
        };
        let Ok(out) = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
        else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut needles = vec![
            self.net.bridge.clone(),
            self.d.dir().display().to_string(),
            self.run_dir.display().to_string(),
            self.net.cgroup_parent.trim_start_matches('/').to_string(),
        ];
        needles.extend(self.ids().iter().map(|id| leaks::veth_name(id)));
        let berthd = self.d.pid().map(|p| format!("leak: process: {p} "));
        let parent = self.net.cgroup_parent.clone();
        text.lines()
            .filter(|l| l.starts_with("leak:") && needles.iter().any(|n| l.contains(n)))
            .filter(|l| !(l.starts_with("leak: cgroup:") && l.ends_with(&parent)))
            .filter(|l| berthd.as_ref().is_none_or(|b| !l.starts_with(b.as_str())))
            .map(String::from)
            .collect()
    }

    /// Removes every pod over the CRI and stops berthd (which removes its bridge and nft
    /// table: `network.remove_on_exit`), then fails when anything is left behind.
    pub async fn finish(mut self) -> Result<()> {
        let mut c = self.rt().await?;
        rpc::remove_all(&mut c).await?;
        drop(c);
        self.d.stop_and_clean().await?;
        let mut leaks = self.leaks();
        leaks.extend(self.leakcheck());
        if !leaks.is_empty() {
            bail!(
                "left behind after removing everything:\n  {}",
                leaks.join("\n  ")
            );
        }
        Ok(())
    }

    fn force_clean(&self) {
        let berthd = self.d.pid().map(|p| p as i32);
        let left: Vec<procs::Leftover> = procs::marked(self.d.mark())
            .into_iter()
            .filter(|p| Some(p.pid) != berthd)
            .collect();
        procs::kill_all(&left);
        for dir in [self.run_dir.as_path(), self.d.dir()] {
            for m in procs::mounts_under(dir).iter().rev() {
                if umount2(m.as_str(), MntFlags::empty()).is_err() {
                    let _ = umount2(m.as_str(), MntFlags::MNT_DETACH);
                }
            }
        }
        for id in self.ids() {
            quiet(Command::new("ip").args(["link", "del", &leaks::veth_name(&id)]));
        }
        quiet(Command::new("ip").args(["link", "del", &self.net.bridge]));
        quiet(Command::new("nft").args(["delete", "table", "inet", &self.net.nft_table()]));
    }
}

fn quiet(cmd: &mut Command) {
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for CtrEnv {
    fn drop(&mut self) {
        let socket = self.d.socket.clone();
        // After finish() berthd is stopped: nothing to remove over the CRI.
        let left = if self.d.pid().is_some() {
            std::thread::spawn(move || blocking_remove_all(socket))
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("cleanup thread panicked")))
        } else {
            Ok(0)
        };
        let leaks = self.leaks();
        if matches!(left, Ok(n) if n > 0) || left.is_err() || !leaks.is_empty() {
            eprintln!(
                "container test cleanup: removed pods: {left:?}; leftovers being force-cleaned: {leaks:?}"
            );
            self.force_clean();
        }
        for dir in leaks::cgroup_dirs(&self.net.cgroup_parent) {
            leaks::remove_cgroup_tree(&dir);
        }
        // The run dir goes after berthd (a field dropped after `d`), unless mounts remain:
        // never recurse into a leaked mount.
        if let Some(run) = self.run.as_ref()
            && !procs::mounts_under(run.path()).is_empty()
            && let Some(run) = self.run.take()
        {
            let kept = run.keep();
            eprintln!("container test cleanup: mounts left under {kept:?}; dir kept");
        }
    }
}

fn blocking_remove_all(socket: PathBuf) -> Result<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ch = crate::bench::uds::connect(&socket)
            .await
            .context("connect for cleanup")?;
        let mut c = RuntimeServiceClient::new(ch);
        rpc::remove_all(&mut c).await
    })
}
