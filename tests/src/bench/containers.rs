//! `bench containers`: CreateContainer + StartContainer latency and the memory a running pod
//! costs, on berthd and on containerd (Debian containerd + runc + CNI + the offline pause
//! image of the pods phase), in one run.
//!
//! Latency: blocks of `block` busybox `sleep 3600` containers in one fresh pod per runtime,
//! runtimes alternating which goes first; each RPC timed alone (wall clock, client
//! connected). Memory: for each pod count (10, 50), each runtime in turn runs that many pods
//! with one sleeping container each, then the per-pod processes are read from /proc
//! ([`procmem`]): berth's monitor vs containerd's shim (and pod init vs pause).
//!
//! berthd gets a short run dir in /run: its monitors' socket paths must fit in a unix
//! socket address (the harness's default run dir under /tmp is too long).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::containerd::{Containerd, CriPods};
use crate::bench::containers_report::print_report;
use crate::bench::env::EnvOptions;
use crate::bench::pods::{BERTHD_BRIDGE, BERTHD_SUBNET, CNI_BRIDGE, CNI_SUBNET};
use crate::bench::procmem::{self, Mem, PerPod};
use crate::bench::stats::Runtime;
use crate::containers::{CtrSpec, rpc as crpc};
use crate::pods::{leaks, rpc};
use crate::{Berthd, BerthdOptions, Registry, TestImage, client, cri, images};

const BERTHD_CGROUP: &str = "/berth-bench-cb";
const CONTAINERD_CGROUP: &str = "/berth-bench-ccd";

#[derive(Debug, Clone)]
pub struct ContainersOptions {
    /// Containers per runtime in the latency phase.
    pub containers: usize,
    /// Containers per block (one pod per block).
    pub block: usize,
    /// Pod counts of the memory phase.
    pub pod_counts: Vec<usize>,
    /// Timed ListContainerStats calls per runtime while the memory phase's pods run (0:
    /// none). `bench stats` sets it, with no latency blocks (`containers` 0).
    pub list_stats: usize,
    pub env: EnvOptions,
}

impl Default for ContainersOptions {
    fn default() -> Self {
        Self {
            containers: 60,
            block: 10,
            pod_counts: vec![10, 50],
            list_stats: 0,
            env: EnvOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Times {
    pub create: Vec<Duration>,
    pub start: Vec<Duration>,
    pub create_start: Vec<Duration>,
    pub stop: Vec<Duration>,
    pub remove: Vec<Duration>,
}

/// One memory sample: `pods` pods on one runtime.
#[derive(Debug, Clone)]
pub struct MemSample {
    pub rt: Runtime,
    pub pods: usize,
    pub per_pod: PerPod,
    pub daemon: Mem,
    /// ListContainerStats latencies with `pods` running containers.
    pub list_stats: Vec<Duration>,
}

struct Env {
    /// Kept alive for the whole run.
    _registry: Registry,
    berthd: Berthd,
    containerd: Containerd,
    /// berthd's run dir; removed after berthd stops.
    run: Option<tempfile::TempDir>,
    busybox: String,
    log_dir: PathBuf,
}

impl Env {
    async fn rt(&self, rt: Runtime) -> Result<rpc::Runtime> {
        match rt {
            Runtime::Berthd => self.berthd.runtime().await,
            Runtime::Containerd => self.containerd.runtime().await,
        }
    }
}

fn pod_config(env: &Env, rt: Runtime, name: &str) -> cri::PodSandboxConfig {
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
        log_directory: env.log_dir.join(rt.name()).join(name).display().to_string(),
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

/// Runs the containers phase and prints its report.
pub async fn run(opts: &ContainersOptions) -> Result<(Times, Times, Vec<MemSample>)> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench containers cannot run: {why}");
    }
    if (opts.containers == 0 && opts.list_stats == 0) || opts.block == 0 {
        bail!("--containers and --block must be at least 1");
    }
    let work = tempfile::Builder::new()
        .prefix("berth-bench-ctrs-")
        .tempdir()?;
    let registry = Registry::start().context("start docker-registry")?;
    let pause = registry.push_as(
        &crate::bench::pods::build_pause(work.path())?,
        "pause",
        "3.9",
    )?;
    let busybox = registry.push(&images::build(TestImage::Busybox)?)?;
    let netns_before = netns_list();
    let run = tempfile::Builder::new().prefix("bcb").tempdir_in("/run")?;
    let extra = format!(
        "run_dir = {:?}\n[grpc]\nsocket = {:?}\n[log]\nlevel = {:?}\n\
         [network]\nbridge = {BERTHD_BRIDGE:?}\nsubnet = {BERTHD_SUBNET:?}\n",
        run.path().display().to_string(),
        run.path().join("berth.sock").display().to_string(),
        opts.env.berthd_log,
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
        &opts.env.containerd_log,
        std::slice::from_ref(&registry.host),
        Some(&pods),
    )
    .await
    .context("start containerd")?;
    let mut env = Env {
        _registry: registry,
        berthd,
        containerd,
        run: Some(run),
        busybox: busybox.reference.clone(),
        log_dir: work.path().join("logs"),
    };
    let result = measure(&env, &pause.reference, opts).await;
    if result.is_err() {
        eprintln!("---- berthd log tail ----\n{}", env.berthd.log_tail(40));
        eprintln!("{}", env.containerd.log_digest());
    }
    let versions = (
        version(&env, Runtime::Berthd).await,
        version(&env, Runtime::Containerd).await,
    );
    for rt in [Runtime::Berthd, Runtime::Containerd] {
        if let Ok(mut c) = env.rt(rt).await
            && let Ok(n) = rpc::remove_all(&mut c).await
            && n > 0
        {
            eprintln!("bench: removed {n} pods left on {}", rt.name());
        }
    }
    let mut problems = Vec::new();
    match env.berthd.terminate(Duration::from_secs(20)).await {
        Ok(st) if st.success() => {}
        Ok(st) => problems.push(format!("berthd exited with {st} on SIGTERM")),
        Err(e) => problems.push(format!("{e:#}")),
    }
    if let Err(e) = env.containerd.stop() {
        problems.push(format!("{e:#}"));
    }
    let run = env.run.take();
    drop(env);
    if let Some(run) = run {
        let left = crate::procs::mounts_under(run.path());
        if left.is_empty() {
            drop(run);
        } else {
            problems.push(format!("mounts left under {:?}: {left:?}", run.keep()));
        }
    }
    let host = clean_host(&netns_before);
    let (b, c, mem) = result?;
    if !problems.is_empty() {
        bail!("cleanup: {}", problems.join("\n"));
    }
    print_report(&b, &c, &mem, opts, versions, &host);
    Ok((b, c, mem))
}

async fn version(env: &Env, rt: Runtime) -> String {
    let Ok(mut c) = env.rt(rt).await else {
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

async fn measure(
    env: &Env,
    pause: &str,
    opts: &ContainersOptions,
) -> Result<(Times, Times, Vec<MemSample>)> {
    let mut ci = env.containerd.images().await?;
    client::pull(&mut ci, pause, None)
        .await
        .context("containerd: pull pause")?;
    client::pull(&mut ci, &env.busybox, None)
        .await
        .context("containerd: pull busybox")?;
    let mut bi = env.berthd.images().await?;
    client::pull(&mut bi, &env.busybox, None)
        .await
        .context("berthd: pull busybox")?;

    let mut times = [Times::default(), Times::default()];
    let idx = |rt: Runtime| usize::from(rt == Runtime::Containerd);
    if opts.containers > 0 {
        for rt in Runtime::order(0) {
            block(env, rt, "warmup", 2, None).await.context("warm-up")?;
        }
    }
    let blocks = opts.containers.div_ceil(opts.block);
    for b in 0..blocks {
        let n = opts.block.min(opts.containers - b * opts.block);
        for rt in Runtime::order(b) {
            let t = Instant::now();
            block(env, rt, &format!("b{b}"), n, Some(&mut times[idx(rt)])).await?;
            eprintln!(
                "bench: block {b}: {} x{n} containers in {:.2}s",
                rt.name(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    let mut mem = Vec::new();
    for &pods in &opts.pod_counts {
        for rt in [Runtime::Berthd, Runtime::Containerd] {
            let s = memory(env, rt, pods, opts.list_stats).await?;
            eprintln!(
                "bench: {} with {pods} pods: {} agents ({} KiB RSS), {} holders ({} KiB RSS)",
                rt.name(),
                s.per_pod.agents,
                s.per_pod.agent_mem.rss_kib,
                s.per_pod.holders,
                s.per_pod.holder_mem.rss_kib
            );
            mem.push(s);
        }
    }
    let [b, c] = times;
    Ok((b, c, mem))
}

/// One pod with `n` containers: each created and started (timed), then all stopped and
/// removed (timed), then the pod goes (untimed).
async fn block(
    env: &Env,
    rt: Runtime,
    tag: &str,
    n: usize,
    times: Option<&mut Times>,
) -> Result<()> {
    let mut c = env.rt(rt).await?;
    let pod_cfg = pod_config(env, rt, &format!("ctr-{}-{tag}", rt.name()));
    let pod = rpc::run(&mut c, &pod_cfg)
        .await
        .with_context(|| format!("{} RunPodSandbox", rt.name()))?;
    let mut local = Times::default();
    let mut ids = Vec::new();
    for i in 0..n {
        let spec = CtrSpec::new(&format!("c{i}"), &env.busybox).cmd(&["sleep", "3600"]);
        let t0 = Instant::now();
        let id = crpc::create(&mut c, &pod, &spec.config, &pod_cfg)
            .await
            .with_context(|| format!("{} CreateContainer {i}", rt.name()))?;
        let t1 = Instant::now();
        crpc::start(&mut c, &id)
            .await
            .with_context(|| format!("{} StartContainer {i}", rt.name()))?;
        let t2 = Instant::now();
        local.create.push(t1 - t0);
        local.start.push(t2 - t1);
        local.create_start.push(t2 - t0);
        ids.push(id);
    }
    for id in &ids {
        let st = crpc::status(&mut c, id).await?;
        if st.state != cri::ContainerState::ContainerRunning as i32 {
            bail!("{} container {id} is not running: {st:?}", rt.name());
        }
    }
    for id in &ids {
        let t = Instant::now();
        crpc::stop(&mut c, id, 0)
            .await
            .with_context(|| format!("{} StopContainer", rt.name()))?;
        local.stop.push(t.elapsed());
    }
    for id in &ids {
        let t = Instant::now();
        crpc::remove(&mut c, id)
            .await
            .with_context(|| format!("{} RemoveContainer", rt.name()))?;
        local.remove.push(t.elapsed());
    }
    rpc::stop(&mut c, &pod).await?;
    rpc::remove(&mut c, &pod).await?;
    if let Some(t) = times {
        t.create.extend(local.create);
        t.start.extend(local.start);
        t.create_start.extend(local.create_start);
        t.stop.extend(local.stop);
        t.remove.extend(local.remove);
    }
    Ok(())
}

/// `pods` pods with one sleeping container each; their per-pod processes read from /proc.
async fn memory(env: &Env, rt: Runtime, pods: usize, list_stats: usize) -> Result<MemSample> {
    let mut c = env.rt(rt).await?;
    for i in 0..pods {
        let cfg = pod_config(env, rt, &format!("mem-{}-{pods}-{i}", rt.name()));
        let pod = rpc::run(&mut c, &cfg)
            .await
            .with_context(|| format!("{} pod {i}", rt.name()))?;
        let spec = CtrSpec::new("app", &env.busybox).cmd(&["sleep", "3600"]);
        let id = crpc::create(&mut c, &pod, &spec.config, &cfg).await?;
        crpc::start(&mut c, &id).await?;
    }
    // Let lazily touched pages settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let procs = procmem::all();
    let (per_pod, daemon) = match rt {
        Runtime::Berthd => (
            procmem::berth_processes(&procs, env.berthd.mark()),
            env.berthd
                .pid()
                .map(|p| procmem::mem_of(p as i32))
                .unwrap_or_default(),
        ),
        Runtime::Containerd => {
            let cfg = env.containerd.config_path.display().to_string();
            let pid = procs.iter().find(|p| p.argv.contains(&cfg)).map(|p| p.pid);
            (
                procmem::containerd_processes(&procs, &env.containerd.socket),
                pid.map(procmem::mem_of).unwrap_or_default(),
            )
        }
    };
    let list_stats = crate::bench::list_stats::time(&mut c, pods, list_stats).await?;
    if per_pod.agents != pods {
        bail!(
            "{}: {} per-pod agents for {pods} pods",
            rt.name(),
            per_pod.agents
        );
    }
    let n = crpc::remove_all(&mut c).await?;
    if n != pods {
        bail!("{}: {n} containers for {pods} pods", rt.name());
    }
    rpc::remove_all(&mut c).await?;
    Ok(MemSample {
        rt,
        pods,
        per_pod,
        daemon,
        list_stats,
    })
}

fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn run_quiet(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the runtimes leave by design (containerd's CNI bridge, the cgroup parents) and
/// anything else found; one line per action.
fn clean_host(netns_before: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for ns in netns_list() {
        if !netns_before.contains(&ns) {
            run_quiet(&["ip", "netns", "delete", &ns]);
            out.push(format!("LEAK: netns {ns} (deleted)"));
        }
    }
    if leaks::link_exists(CNI_BRIDGE) {
        run_quiet(&["ip", "link", "delete", CNI_BRIDGE]);
        out.push(format!("deleted containerd's CNI bridge {CNI_BRIDGE}"));
    }
    if leaks::link_exists(BERTHD_BRIDGE) {
        run_quiet(&["ip", "link", "delete", BERTHD_BRIDGE]);
        out.push(format!("LEAK: berthd's bridge {BERTHD_BRIDGE} (deleted)"));
    }
    let nat = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let prefix = CNI_SUBNET.trim_end_matches("0.0/16");
    for rule in nat
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains(prefix))
    {
        let mut args = vec!["iptables", "-t", "nat", "-D"];
        args.extend(rule[3..].split_whitespace().map(|s| s.trim_matches('"')));
        run_quiet(&args);
        out.push(format!("LEAK: iptables nat rule `{rule}` (deleted)"));
    }
    for parent in [BERTHD_CGROUP, CONTAINERD_CGROUP] {
        for dir in leaks::cgroup_dirs(parent) {
            let n = std::fs::read_dir(&dir)
                .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0);
            if n > 0 {
                out.push(format!("LEAK: {n} cgroups left in {}", dir.display()));
            }
            leaks::remove_cgroup_tree(&dir);
        }
    }
    out.push(format!(
        "removed the cgroup parents {BERTHD_CGROUP} and {CONTAINERD_CGROUP}"
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_short_enough() {
        // /run/bcbXXXXXX/pods/<64>/monitor/monitor.sock must fit in sun_path (108 bytes).
        assert!("/run/bcbXXXXXX/pods/".len() + 64 + "/monitor/monitor.sock".len() < 108);
    }
}
