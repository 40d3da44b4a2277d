//! The setup the CRI benches share: one local registry (busybox and the offline pause
//! image), a release berthd and the Debian containerd (+ runc, CNI) side by side, both with
//! busybox pulled; pod configs per runtime; and the teardown that stops both, checks what
//! they left and cleans the host.
//!
//! berthd gets a short run dir in /run: its monitors' socket paths must fit in a unix
//! socket address (the harness's default run dir under /tmp is too long).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::containerd::{Containerd, CriPods};
use crate::bench::env::EnvOptions;
use crate::bench::host_cleanup::{self, clean_host};
use crate::bench::pods::{BERTHD_BRIDGE, BERTHD_SUBNET};
use crate::bench::stats::Runtime;
use crate::containers::{CtrSpec, rpc as crpc};
use crate::pods::rpc;
use crate::{Berthd, BerthdOptions, Registry, TestImage, client, cri, images};

pub const BERTHD_CGROUP: &str = "/berth-bench-cb";
pub const CONTAINERD_CGROUP: &str = "/berth-bench-ccd";

/// Both runtimes, ready to run busybox pods.
pub struct SideBySide {
    pub berthd: Berthd,
    pub containerd: Containerd,
    /// The busybox image reference (pulled on both).
    pub busybox: String,
    log_dir: PathBuf,
    /// Where to copy both daemons' logs at the end (`--logs`).
    logs_dir: Option<PathBuf>,
    /// berthd's run dir; removed after berthd stops.
    run: Option<tempfile::TempDir>,
    netns_before: Vec<String>,
    _registry: Registry,
    /// Holds containerd's CNI state and the pods' logs; goes last.
    _work: tempfile::TempDir,
}

/// What [`SideBySide::finish`] reports besides the phase's result.
pub struct Finished {
    /// `name version (api)` of berthd and of containerd.
    pub versions: (String, String),
    /// What the host cleanup did, one line per action.
    pub host: Vec<String>,
}

impl SideBySide {
    /// Starts the registry, berthd and containerd; `prefix` names the temp dir.
    pub async fn start(prefix: &str, env: &EnvOptions) -> Result<Self> {
        let work = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let registry = Registry::start().context("start docker-registry")?;
        let pause = registry.push_as(
            &crate::bench::pods::build_pause(work.path())?,
            "pause",
            "3.9",
        )?;
        let busybox = registry.push(&images::build(TestImage::Busybox)?)?;
        let netns_before = host_cleanup::netns_list();
        let run = tempfile::Builder::new().prefix("bcb").tempdir_in("/run")?;
        let extra = format!(
            "run_dir = {:?}\n[grpc]\nsocket = {:?}\n[log]\nlevel = {:?}\n\
             [network]\nbridge = {BERTHD_BRIDGE:?}\nsubnet = {BERTHD_SUBNET:?}\n",
            run.path().display().to_string(),
            run.path().join("berth.sock").display().to_string(),
            env.berthd_log,
        );
        let berthd = Berthd::start_with(BerthdOptions::toml(extra))
            .await
            .context("start berthd")?;
        let pods = CriPods {
            sandbox_image: pause.reference.clone(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conflist: crate::bench::pods::cni_conflist(&work.path().join("cni-ipam")),
        };
        let containerd = Containerd::start_with(
            &env.containerd_log,
            std::slice::from_ref(&registry.host),
            Some(&pods),
        )
        .await
        .context("start containerd")?;
        let s = SideBySide {
            berthd,
            containerd,
            busybox: busybox.reference.clone(),
            log_dir: work.path().join("logs"),
            logs_dir: env.logs_dir.clone(),
            run: Some(run),
            netns_before,
            _registry: registry,
            _work: work,
        };
        let mut ci = s.containerd.images().await?;
        client::pull(&mut ci, &pause.reference, None)
            .await
            .context("containerd: pull pause")?;
        client::pull(&mut ci, &s.busybox, None)
            .await
            .context("containerd: pull busybox")?;
        let mut bi = s.berthd.images().await?;
        client::pull(&mut bi, &s.busybox, None)
            .await
            .context("berthd: pull busybox")?;
        Ok(s)
    }

    pub async fn rt(&self, rt: Runtime) -> Result<rpc::Runtime> {
        match rt {
            Runtime::Berthd => self.berthd.runtime().await,
            Runtime::Containerd => self.containerd.runtime().await,
        }
    }

    /// A pod config named `name` under the runtime's bench cgroup parent.
    pub fn pod_config(&self, rt: Runtime, name: &str) -> cri::PodSandboxConfig {
        let parent = match rt {
            Runtime::Berthd => BERTHD_CGROUP,
            Runtime::Containerd => CONTAINERD_CGROUP,
        };
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("{name}-uid"),
                namespace: "berth-bench".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self
                .log_dir
                .join(rt.name())
                .join(name)
                .display()
                .to_string(),
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

    /// Runs pod `name` with one busybox `sleep 3600` container on `rt` (untimed); returns
    /// the pod id and the container id.
    pub async fn run_sleeping_pod(
        &self,
        c: &mut rpc::Runtime,
        rt: Runtime,
        name: &str,
    ) -> Result<(String, String)> {
        let cfg = self.pod_config(rt, name);
        let pod = rpc::run(c, &cfg)
            .await
            .with_context(|| format!("{} RunPodSandbox {name}", rt.name()))?;
        let spec = CtrSpec::new("app", &self.busybox).cmd(&["sleep", "3600"]);
        let id = crpc::create(c, &pod, &spec.config, &cfg)
            .await
            .with_context(|| format!("{} CreateContainer in {name}", rt.name()))?;
        crpc::start(c, &id)
            .await
            .with_context(|| format!("{} StartContainer in {name}", rt.name()))?;
        Ok((pod, id))
    }

    /// `name version (api)` from the runtime's Version RPC.
    pub async fn version(&self, rt: Runtime) -> String {
        let Ok(mut c) = self.rt(rt).await else {
            return "unknown".into();
        };
        match c
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await
        {
            Ok(v) => {
                let v = v.into_inner();
                format!(
                    "{} {} ({})",
                    v.runtime_name, v.runtime_version, v.runtime_api_version
                )
            }
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// Ends the run whose outcome is `result`: removes the pods left, stops both runtimes,
    /// checks for leftovers and cleans the host. Errors of the run come first.
    pub async fn finish<T>(mut self, result: Result<T>) -> Result<(T, Finished)> {
        if result.is_err() {
            eprintln!("---- berthd log tail ----\n{}", self.berthd.log_tail(40));
            eprintln!("{}", self.containerd.log_digest());
        }
        if let Some(dir) = &self.logs_dir
            && let Err(e) =
                crate::bench::env::copy_logs(dir, &self.berthd.log_path, &self.containerd.log_path)
        {
            eprintln!("bench: {e:#}");
        }
        let versions = (
            self.version(Runtime::Berthd).await,
            self.version(Runtime::Containerd).await,
        );
        for rt in [Runtime::Berthd, Runtime::Containerd] {
            if let Ok(mut c) = self.rt(rt).await
                && let Ok(n) = rpc::remove_all(&mut c).await
                && n > 0
            {
                eprintln!("bench: removed {n} pods left on {}", rt.name());
            }
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
        let run = self.run.take();
        let netns_before = std::mem::take(&mut self.netns_before);
        drop(self);
        if let Some(run) = run {
            let left = crate::procs::mounts_under(run.path());
            if left.is_empty() {
                drop(run);
            } else {
                problems.push(format!("mounts left under {:?}: {left:?}", run.keep()));
            }
        }
        let host = clean_host(&netns_before, &[BERTHD_CGROUP, CONTAINERD_CGROUP]);
        let value = result?;
        if !problems.is_empty() {
            bail!("cleanup: {}", problems.join("\n"));
        }
        Ok((value, Finished { versions, host }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_short_enough() {
        // /run/bcbXXXXXX/pods/<64>/monitor/monitor.sock must fit in sun_path (108 bytes).
        assert!("/run/bcbXXXXXX/pods/".len() + 64 + "/monitor/monitor.sock".len() < 108);
    }
}
