//! `bench containers`: CreateContainer + StartContainer latency and the memory a running pod
//! costs, on berthd and on containerd (Debian containerd + runc + CNI + the offline pause
//! image of the pods phase), in one run.
//!
//! Latency: blocks of `block` busybox `sleep 3600` containers in one fresh pod per runtime,
//! runtimes alternating which goes first; each RPC timed alone (wall clock, client
//! connected). Memory: for each pod count (10, 50), each runtime in turn runs that many pods
//! with one sleeping container each, then the per-pod processes are read from /proc
//! ([`procmem`]): berth's monitor vs containerd's shim (and pod init vs pause).
//! The runtimes are set up by [`SideBySide`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::containers_report::print_report;
use crate::bench::env::EnvOptions;
use crate::bench::procmem::{self, Mem, PerPod};
use crate::bench::side_by_side::SideBySide;
use crate::bench::stats::Runtime;
use crate::containers::{CtrSpec, rpc as crpc};
use crate::cri;
use crate::pods::rpc;

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

/// Runs the containers phase and prints its report.
pub async fn run(opts: &ContainersOptions) -> Result<(Times, Times, Vec<MemSample>)> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench containers cannot run: {why}");
    }
    if (opts.containers == 0 && opts.list_stats == 0) || opts.block == 0 {
        bail!("--containers and --block must be at least 1");
    }
    let env = SideBySide::start("berth-bench-ctrs-", &opts.env).await?;
    let result = measure(&env, opts).await;
    let ((b, c, mem), done) = env.finish(result).await?;
    print_report(&b, &c, &mem, opts, done.versions, &done.host);
    Ok((b, c, mem))
}

async fn measure(
    env: &SideBySide,
    opts: &ContainersOptions,
) -> Result<(Times, Times, Vec<MemSample>)> {
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
    env: &SideBySide,
    rt: Runtime,
    tag: &str,
    n: usize,
    times: Option<&mut Times>,
) -> Result<()> {
    let mut c = env.rt(rt).await?;
    let pod_cfg = env.pod_config(rt, &format!("ctr-{}-{tag}", rt.name()));
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
async fn memory(
    env: &SideBySide,
    rt: Runtime,
    pods: usize,
    list_stats: usize,
) -> Result<MemSample> {
    let mut c = env.rt(rt).await?;
    for i in 0..pods {
        let name = format!("mem-{}-{pods}-{i}", rt.name());
        env.run_sleeping_pod(&mut c, rt, &name).await?;
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
