//! The bench environment shared by all phases: one local registry, a release berthd and the
//! Debian containerd, both pointed at that registry over plain HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::containerd::{Containerd, CriPods};
use crate::bench::stats::Runtime;
use crate::client::Images;
use crate::cri::VersionRequest;
use crate::{Berthd, BerthdOptions, Registry};

/// Options common to every phase.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// berthd's `[log] level` (a tracing filter).
    pub berthd_log: String,
    /// containerd's `[debug] level` (info, debug, ...).
    pub containerd_log: String,
    /// Copy both daemons' logs here before their temp dirs are removed.
    pub logs_dir: Option<PathBuf>,
    /// More berthd config: TOML tables only (e.g. `[network]`), appended after `[log]`.
    pub berthd_toml: String,
    /// Pause image and CNI for containerd's CRI plugin (phases that run pods).
    pub containerd_pods: Option<CriPods>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            // Debug on berth_image adds one line per blob: cheap, and shows where time goes.
            berthd_log: "info,berth_image=debug".into(),
            containerd_log: "info".into(),
            logs_dir: None,
            berthd_toml: String::new(),
            containerd_pods: None,
        }
    }
}

pub struct BenchEnv {
    pub registry: Registry,
    pub berthd: Berthd,
    pub containerd: Containerd,
    opts: EnvOptions,
}

impl BenchEnv {
    /// Starts berthd and containerd against an already running registry.
    pub async fn start(registry: Registry, opts: EnvOptions) -> Result<Self> {
        let extra = format!("[log]\nlevel = {:?}\n{}", opts.berthd_log, opts.berthd_toml);
        let berthd = Berthd::start_with(BerthdOptions::toml(extra))
            .await
            .context("start berthd")?;
        let containerd = Containerd::start_with(
            &opts.containerd_log,
            std::slice::from_ref(&registry.host),
            opts.containerd_pods.as_ref(),
        )
        .await
        .context("start containerd")?;
        Ok(Self {
            registry,
            berthd,
            containerd,
            opts,
        })
    }

    /// A CRI ImageService client for `rt`.
    pub async fn images(&self, rt: Runtime) -> Result<Images> {
        match rt {
            Runtime::Berthd => self.berthd.images().await,
            Runtime::Containerd => self.containerd.images().await,
        }
    }

    /// "runtime_name runtime_version (runtime_api_version)" as the runtime reports it.
    pub async fn version(&self, rt: Runtime) -> Result<String> {
        let mut c = match rt {
            Runtime::Berthd => self.berthd.runtime().await?,
            Runtime::Containerd => self.containerd.runtime().await?,
        };
        let v = c
            .version(VersionRequest {
                version: "v1".into(),
            })
            .await
            .with_context(|| format!("{} Version", rt.name()))?
            .into_inner();
        Ok(format!(
            "{} {} ({})",
            v.runtime_name, v.runtime_version, v.runtime_api_version
        ))
    }

    /// Log tails of both daemons, for error reports.
    pub fn log_tails(&self) -> String {
        format!(
            "---- berthd log tail ({}) ----\n{}\n{}",
            self.berthd.log_path.display(),
            self.berthd.log_tail(40),
            self.containerd.log_digest()
        )
    }

    /// Copies the logs (if asked), stops both daemons and the registry, and checks that
    /// nothing they started is left.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(dir) = &self.opts.logs_dir {
            copy_logs(dir, &self.berthd.log_path, &self.containerd.log_path)?;
        }
        let mut problems = Vec::new();
        match self.berthd.terminate(Duration::from_secs(20)).await {
            Ok(st) if st.success() => {}
            Ok(st) => problems.push(format!("berthd exited with {st} on SIGTERM")),
            Err(e) => problems.push(format!("{e:#}")),
        }
        if let Err(e) = self.containerd.stop() {
            problems.push(format!("{e:#}"));
        }
        // Dropping berthd checks for leftover processes/mounts and removes its dir; the
        // registry's drop kills it and checks for leftovers too.
        drop(self);
        if !problems.is_empty() {
            bail!("cleanup: {}", problems.join("\n"));
        }
        Ok(())
    }
}

/// Copies both daemons' logs into `dir` (created if needed).
pub fn copy_logs(dir: &Path, berthd: &Path, containerd: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {dir:?}"))?;
    std::fs::copy(berthd, dir.join("berthd.log")).context("copy berthd log")?;
    std::fs::copy(containerd, dir.join("containerd.log")).context("copy containerd log")?;
    eprintln!("bench: logs copied to {}", dir.display());
    Ok(())
}
