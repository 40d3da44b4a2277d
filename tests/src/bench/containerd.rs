//! The Debian containerd (1.6.x) as a reference runtime: its own config, root, state and
//! sockets in a temp dir, its CRI plugin pulling over plain HTTP from local registries.
//!
//! Cleanup (on [`Containerd::stop`] or drop): SIGTERM and wait, kill any shim it left
//! (they carry our [`MARK_VAR`]), unmount whatever is still mounted under the temp root,
//! then remove the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic::Code;
use tonic::transport::Channel;

use crate::cri::image_service_client::ImageServiceClient;
use crate::cri::runtime_service_client::RuntimeServiceClient;
use crate::cri::{VersionRequest, VersionResponse};
use crate::procs::{self, MARK_VAR};

/// Snapshotters that fail (or are pointless) on this host; disabled to keep the log clean.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
];

/// The containerd binary: `CONTAINERD_BIN`, else `/usr/bin/containerd`.
pub fn containerd_bin() -> PathBuf {
    std::env::var_os("CONTAINERD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/containerd"))
}

/// `containerd --version`, trimmed.
pub fn containerd_version() -> Result<String> {
    let bin = containerd_bin();
    let out = Command::new(&bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {bin:?} --version (install containerd)"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What containerd's CRI plugin needs to run pod sandboxes (the pods bench): the pause
/// image it runs as each sandbox, and CNI (plugin binaries + one conflist).
#[derive(Debug, Clone, Default)]
pub struct CriPods {
    /// `host:port/pause:tag` in a local registry (pre-pulled before timing).
    pub sandbox_image: String,
    /// Where the CNI plugin binaries are (Debian: /usr/lib/cni).
    pub cni_bin_dir: PathBuf,
    /// The network conflist, written as `<dir>/cni/conf/10-bench.conflist`.
    pub cni_conflist: String,
}

/// The config file for a containerd rooted at `dir`, logging at `log_level`; `plain_http`
/// lists `host:port` registries its CRI plugin reaches over `http://host:port`.
pub fn config_toml(dir: &Path, log_level: &str, plain_http: &[String]) -> String {
    config_toml_with(dir, log_level, plain_http, None)
}

/// [`config_toml`], with the pause image and CNI bin dir of `pods` when given.
pub fn config_toml_with(
    dir: &Path,
    log_level: &str,
    plain_http: &[String],
    pods: Option<&CriPods>,
) -> String {
    let p = |rel: &str| format!("{:?}", dir.join(rel).to_string_lossy());
    let sandbox_image = pods
        .map(|c| c.sandbox_image.as_str())
        .unwrap_or("berth-bench.invalid/pause:none");
    let cni_bin = pods
        .map(|c| format!("{:?}", c.cni_bin_dir.to_string_lossy()))
        .unwrap_or_else(|| p("cni/bin"));
    let disabled: Vec<String> = DISABLED_PLUGINS.iter().map(|s| format!("{s:?}")).collect();
    let mut t = format!(
        "version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [{disabled}]\n\
         \n\
         [grpc]\n\
         address = {sock}\n\
         \n\
         [ttrpc]\n\
         address = {ttrpc}\n\
         \n\
         [debug]\n\
         level = {log_level:?}\n\
         \n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n\
         path = {opt}\n\
         \n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n\
         restrict_oom_score_adj = true\n\
         sandbox_image = {sandbox_image:?}\n\
         stream_server_address = \"127.0.0.1\"\n\
         stream_server_port = \"0\"\n\
         \n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
         snapshotter = \"overlayfs\"\n\
         \n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
         bin_dir = {cni_bin}\n\
         conf_dir = {cni_conf}\n",
        root = p("root"),
        state = p("state"),
        disabled = disabled.join(", "),
        sock = p("containerd.sock"),
        ttrpc = p("containerd.sock.ttrpc"),
        opt = p("opt"),
        cni_conf = p("cni/conf"),
    );
    for host in plain_http {
        t.push_str(&format!(
            "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.{host:?}]\n\
             endpoint = [\"http://{host}\"]\n"
        ));
    }
    t
}

/// A running containerd; stopped and cleaned up on [`Containerd::stop`] or drop.
pub struct Containerd {
    pub socket: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    mark: String,
}

impl Containerd {
    /// Starts containerd (logging at `log_level`: info, debug, ...) and waits until its CRI
    /// plugin answers `Version`.
    pub async fn start(log_level: &str, plain_http: &[String]) -> Result<Self> {
        Self::start_with(log_level, plain_http, None).await
    }

    /// [`Containerd::start`], set up to run pod sandboxes when `pods` is given.
    pub async fn start_with(
        log_level: &str,
        plain_http: &[String],
        pods: Option<&CriPods>,
    ) -> Result<Self> {
        // "berth" in the name: leakcheck.sh finds the dir (and mounts in it) if we leak it.
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-containerd-")
            .tempdir()?;
        let d = dir.path();
        for sub in ["root", "state", "opt", "cni/bin", "cni/conf"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        let config_path = d.join("config.toml");
        std::fs::write(
            &config_path,
            config_toml_with(d, log_level, plain_http, pods),
        )?;
        if let Some(pods) = pods {
            std::fs::write(d.join("cni/conf/10-bench.conflist"), &pods.cni_conflist)?;
        }
        let log_path = d.join("containerd.log");
        let log = std::fs::File::create(&log_path)?;
        let mark = crate::unique_id("containerd");
        let bin = containerd_bin();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config_path)
            .env(MARK_VAR, &mark)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {bin:?} (install containerd)"))?;
        let mut me = Containerd {
            socket: d.join("containerd.sock"),
            config_path,
            log_path,
            dir: Some(dir),
            child: Some(child),
            mark,
        };
        if let Err(e) = me.wait_cri(Duration::from_secs(30)).await {
            let _ = me.stop();
            return Err(e);
        }
        Ok(me)
    }

    async fn wait_cri(&mut self, timeout: Duration) -> Result<VersionResponse> {
        let until = Instant::now() + timeout;
        let mut last = String::from("socket never appeared");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(st) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "containerd exited during startup ({st}):\n{}",
                    self.log_digest()
                );
            }
            if let Ok(ch) = crate::bench::uds::connect(&self.socket).await {
                let req = VersionRequest {
                    version: "v1".into(),
                };
                match RuntimeServiceClient::new(ch).version(req).await {
                    Ok(v) => return Ok(v.into_inner()),
                    // No runtime.v1 service at all: the CRI plugin did not load.
                    Err(s) if s.code() == Code::Unimplemented && self.cri_failed() => {
                        bail!(
                            "containerd's CRI plugin did not load ({}):\n{}",
                            s.message(),
                            self.log_digest()
                        );
                    }
                    Err(s) => last = format!("Version: {s}"),
                }
            }
            if Instant::now() >= until {
                bail!(
                    "containerd CRI not ready after {timeout:?} ({last}):\n{}",
                    self.log_digest()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn cri_failed(&self) -> bool {
        std::fs::read_to_string(&self.log_path)
            .map(|l| l.contains("io.containerd.grpc.v1.cri") && l.contains("failed to load plugin"))
            .unwrap_or(false)
    }

    /// Error lines plus the last lines of the log.
    pub fn log_digest(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("level=error") || l.contains("level=fatal"))
            .collect();
        format!(
            "---- containerd errors ----\n{}\n---- containerd log tail ({}) ----\n{}",
            errors.join("\n"),
            self.log_path.display(),
            crate::tail_file(&self.log_path, 30)
        )
    }

    pub async fn connect(&self) -> Result<Channel> {
        crate::bench::uds::connect(&self.socket).await
    }

    pub async fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.connect().await?))
    }

    pub async fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.connect().await?))
    }

    /// The temp dir holding config, root, state, sockets and log.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// Stops containerd and removes everything it created; errors name what was left.
    pub fn stop(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                problems.push("containerd ignored SIGTERM for 15s; killed".to_string());
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // Shims inherit containerd's environment, hence our mark (none expected for pulls).
        if let Err(e) = procs::check_none_left(&self.mark, "containerd") {
            problems.push(e);
        }
        if let Some(dir) = self.dir.take() {
            problems.extend(release_dir(dir, "containerd"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("\n"))
        }
    }
}

/// Unmounts everything at or below `dir`, deepest (latest) first.
/// Unmounts what a daemon (`what`) left under its temp dir, then removes the dir; a dir
/// that still holds a mount is kept (never recursed into) and reported.
pub(crate) fn release_dir(dir: tempfile::TempDir, what: &str) -> Option<String> {
    for m in procs::mounts_under(dir.path()).iter().rev() {
        eprintln!("bench: unmounting {what} leftover {m}");
        if umount2(m.as_str(), MntFlags::empty()).is_err() {
            let _ = umount2(m.as_str(), MntFlags::MNT_DETACH);
        }
    }
    let left = procs::mounts_under(dir.path());
    if !left.is_empty() {
        let kept = dir.keep();
        return Some(format!("mounts left under {kept:?}: {}", left.join(", ")));
    }
    dir.close()
        .err()
        .map(|e| format!("remove {what} temp dir: {e}"))
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if (self.child.is_some() || self.dir.is_some())
            && let Err(e) = self.stop()
        {
            eprintln!("containerd cleanup: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_valid_toml_with_mirrors() {
        let t = config_toml(Path::new("/tmp/x"), "info", &["127.0.0.1:5000".into()]);
        let v: toml::Table = t.parse().expect("valid toml");
        let cri = &v["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(cri["restrict_oom_score_adj"].as_bool(), Some(true));
        assert_eq!(
            cri["registry"]["mirrors"]["127.0.0.1:5000"]["endpoint"][0].as_str(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(
            v["grpc"]["address"].as_str(),
            Some("/tmp/x/containerd.sock")
        );
        assert_eq!(v["version"].as_integer(), Some(2));
        assert_eq!(v["debug"]["level"].as_str(), Some("info"));
    }
}
