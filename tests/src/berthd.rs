//! A real `berthd` serving the CRI on a unix socket in a temp dir, with its own root and run
//! dirs, so tests run side by side. Its log goes to `<dir>/berthd.log`.
//!
//! Its base config sets `network.remove_on_exit`: berthd's bridge and nft table stay while
//! it runs and go when it stops (see [`Berthd::stop_and_clean`]).
//!
//! On drop: SIGTERM (SIGKILL after a grace period), wait, check that no process of this
//! daemon survived (panics if one did), and remove the temp dir unless mounts remain in it.
//! Tests should end with [`crate::finish`] so that a failing test prints berthd's log tail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::cri::image_service_client::ImageServiceClient;
use crate::cri::runtime_service_client::RuntimeServiceClient;
use crate::procs::{self, MARK_VAR};

/// How to start berthd.
#[derive(Debug, Clone, Default)]
pub struct BerthdOptions {
    /// TOML merged over the harness's base config, table by table (so `[image]` keys add to
    /// and override the base `[image]` table).
    pub extra_toml: String,
    /// Extra environment for the daemon.
    pub env: Vec<(String, String)>,
}

impl BerthdOptions {
    pub fn toml(extra: impl Into<String>) -> Self {
        Self {
            extra_toml: extra.into(),
            env: Vec::new(),
        }
    }
}

pub struct Berthd {
    pub root_dir: PathBuf,
    pub run_dir: PathBuf,
    pub socket: PathBuf,
    /// The Docker API's socket (`DOCKER_HOST=unix://<docker_socket>`).
    pub docker_socket: PathBuf,
    pub config_path: PathBuf,
    /// berthd's stdout+stderr, appended across restarts.
    pub log_path: PathBuf,
    /// The config as written (TOML).
    pub config_text: String,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    bin: PathBuf,
    env: Vec<(String, String)>,
    mark: String,
}

/// The berthd binary: `BERTHD_BIN`, else `cargo build -p berthd --bin berthd` once per process.
pub fn berthd_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTHD_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return Ok(p.clone());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "berthd", "--bin", "berthd"])
        .current_dir(crate::workspace_root())
        .stdin(Stdio::null())
        .output()
        .context("run cargo build -p berthd")?;
    if !out.status.success() {
        bail!(
            "cargo build -p berthd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let p = crate::target_dir().join("debug/berthd");
    if !p.is_file() {
        bail!("{p:?} missing after cargo build");
    }
    *built = Some(p.clone());
    Ok(p)
}

/// Recursively merges `over` into `base` (tables merge; other values replace).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

thread_local! {
    /// Log tails of daemons dropped on this thread, printed by [`crate::finish`] on failure.
    static DROPPED_LOGS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Takes the log tails saved by daemons dropped on this thread.
pub fn take_dropped_logs() -> Vec<String> {
    DROPPED_LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

impl Berthd {
    /// Starts berthd with the base config.
    pub async fn start() -> Result<Self> {
        Self::start_with(BerthdOptions::default()).await
    }

    pub async fn start_with(opts: BerthdOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("berthd-test-").tempdir()?;
        let d = dir.path();
        let base = format!(
            "root_dir = {root:?}\nrun_dir = {run:?}\n\
             [grpc]\nsocket = {sock:?}\nshutdown_grace_secs = 3\n\
             [docker]\nsocket = {docker_sock:?}\n\
             [image]\nauth_file = {auth:?}\n\
             [network]\nremove_on_exit = true\n\
             [log]\nlevel = \"info,berthd=debug,berth_engine=debug,berth_cri=debug,berth_image=debug\"\n",
            root = d.join("root"),
            run = d.join("run"),
            sock = d.join("run/berth.sock"),
            docker_sock = d.join("run/docker.sock"),
            auth = d.join("no-docker-config.json"),
        );
        let mut table: toml::Table = base.parse().context("base config")?;
        if !opts.extra_toml.trim().is_empty() {
            let extra: toml::Table = opts.extra_toml.parse().context("parse extra_toml")?;
            merge(&mut table, extra);
        }
        let config_text = toml::to_string(&table).context("serialize config")?;
        let config_path = d.join("berth.toml");
        std::fs::write(&config_path, &config_text)?;
        let mut me = Berthd {
            root_dir: d.join("root"),
            run_dir: d.join("run"),
            socket: table
                .get("grpc")
                .and_then(|g| g.get("socket"))
                .and_then(|s| s.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(|| d.join("run/berth.sock")),
            docker_socket: table
                .get("docker")
                .and_then(|g| g.get("socket"))
                .and_then(|s| s.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(|| d.join("run/docker.sock")),
            config_path,
            log_path: d.join("berthd.log"),
            config_text,
            dir: Some(dir),
            child: None,
            bin: berthd_bin()?,
            env: opts.env,
            mark: crate::unique_id("berthd"),
        };
        me.spawn().await?;
        Ok(me)
    }

    /// The temp dir holding everything of this daemon.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The value of `BERTH_TEST_MARK` this daemon and its children carry.
    pub fn mark(&self) -> &str {
        &self.mark
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&self.config_path)
            .env(MARK_VAR, &self.mark)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {:?}", self.bin))?;
        self.child = Some(child);
        self.wait_socket(Duration::from_secs(30)).await
    }

    async fn wait_socket(&mut self, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(st) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "berthd exited during startup ({st}); log:\n{}",
                    self.log_tail(40)
                );
            }
            if UnixStream::connect(&self.socket).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!(
                    "berthd socket {:?} not ready after {timeout:?}; log:\n{}",
                    self.socket,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A gRPC channel over the unix socket.
    pub async fn connect(&self) -> Result<Channel> {
        let path = self.socket.clone();
        let ch =
            Endpoint::try_from("http://berthd.sock")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .with_context(|| format!("connect to {:?}", self.socket))?;
        Ok(ch)
    }

    pub async fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.connect().await?))
    }

    pub async fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.connect().await?))
    }

    /// The last `lines` lines of berthd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::tail_file(&self.log_path, lines)
    }

    /// SIGTERM, then wait up to `grace` (SIGKILL after it). Returns the exit status.
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("berthd is not running");
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let until = Instant::now() + grace;
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let st = child.wait()?;
                bail!(
                    "berthd ignored SIGTERM for {grace:?}; killed ({st}); log:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How a test ends its daemon: SIGTERM (with the base config's `network.remove_on_exit`
    /// berthd then removes its bridge and nft table), or, when it is not running (killed by
    /// the test), `berthd reset` with its config.
    pub async fn stop_and_clean(&mut self) -> Result<()> {
        if self.child.is_none() {
            return self.reset().map(|_| ());
        }
        let st = self.terminate(Duration::from_secs(20)).await?;
        if !st.success() {
            bail!(
                "berthd exited with {st} on SIGTERM; log:\n{}",
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// `berthd reset --config <this daemon's config>`; its output (one line per removal).
    pub fn reset(&self) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config_path)
            .arg("reset")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {:?} reset", self.bin))?;
        if !out.status.success() {
            bail!(
                "berthd reset failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Clean stop (SIGTERM) then start again with the same dirs and config.
    pub async fn restart(&mut self) -> Result<()> {
        let st = self.terminate(Duration::from_secs(15)).await?;
        if !st.success() {
            bail!(
                "berthd exited with {st} on SIGTERM; log:\n{}",
                self.log_tail(30)
            );
        }
        self.spawn().await
    }

    /// SIGKILL berthd and reap it (its children, if any, are left alone).
    pub fn kill9(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("berthd is not running");
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts berthd again after [`Berthd::kill9`] or [`Berthd::terminate`].
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("berthd is already running");
        }
        self.spawn().await
    }

    /// Live processes carrying this daemon's mark (berthd itself and anything it spawned).
    pub fn leftovers(&self) -> Vec<procs::Leftover> {
        procs::marked(&self.mark)
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let tail = format!(
            "---- berthd log tail ({}) ----\n{}\n---- end of berthd log ----",
            self.log_path.display(),
            self.log_tail(60)
        );
        let mut problems = Vec::new();
        if let Err(e) = procs::check_none_left(&self.mark, "berthd") {
            problems.push(e);
        }
        if let Some(dir) = self.dir.take() {
            let mounts = procs::mounts_under(dir.path());
            if mounts.is_empty() {
                let _ = dir.close();
            } else {
                // Never recurse into a leaked mount: keep the dir and report.
                let kept = dir.keep();
                problems.push(format!("mounts left under {kept:?}: {}", mounts.join(", ")));
            }
        }
        if std::thread::panicking() {
            eprintln!("{tail}");
            for p in &problems {
                eprintln!("{p}");
            }
        } else if !problems.is_empty() {
            eprintln!("{tail}");
            panic!("{}", problems.join("\n"));
        } else {
            DROPPED_LOGS.with(|l| l.borrow_mut().push(tail));
        }
    }
}
