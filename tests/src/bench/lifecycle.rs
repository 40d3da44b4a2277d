//! `bench lifecycle`: the full crictl lifecycle of one pod at a time, as a node runs
//! `docker run --rm`-like workloads: RunPodSandbox (with `log_directory` set and the default
//! namespace options), CreateContainer (busybox `sleep 3600`), StartContainer,
//! StopContainer (timeout 0), RemoveContainer, StopPodSandbox, RemovePodSandbox, each RPC
//! timed alone (wall clock, client connected), on berthd and on containerd, runtimes
//! alternating which goes first per iteration.
//!
//! Two modes, one after the other in the same run: no other pod on the node, and one other
//! pod (with a sleeping container) per runtime kept running throughout. berthd's own RPC
//! trace (`rpc done latency_ms`) of each mode is read back from its log, so the server-side
//! cost shows beside the client's wall clock. The runtimes are set up by [`SideBySide`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::env::EnvOptions;
use crate::bench::lifecycle_report::print_report;
use crate::bench::rpc_trace;
use crate::bench::side_by_side::SideBySide;
use crate::bench::stats::Runtime;
use crate::containers::{CtrSpec, rpc as crpc};
use crate::cri;
use crate::pods::rpc;

/// The RPCs of one lifecycle, in the order they are sent.
pub const RPCS: [&str; 7] = [
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
];

#[derive(Debug, Clone)]
pub struct LifecycleOptions {
    /// Timed lifecycles per runtime and mode.
    pub iterations: usize,
    /// Idle time before each lifecycle (ms): 0 runs them back to back, as `docker run --rm`
    /// in a loop does; a pause lets the kernel finish the previous pod's asynchronous
    /// teardown (network namespace cleanup) first.
    pub pause_ms: u64,
    pub env: EnvOptions,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        Self {
            iterations: 30,
            pause_ms: 0,
            env: EnvOptions::default(),
        }
    }
}

/// Whether another pod runs on the node during the lifecycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Alone,
    WithOther,
}

impl Mode {
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Alone => "no other pod on the node",
            Mode::WithOther => "one other pod (with a running container) on the node",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Mode::Alone => "alone",
            Mode::WithOther => "other",
        }
    }
}

/// One runtime's latencies, one vector per entry of [`RPCS`].
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub rpc: [Vec<Duration>; 7],
}

impl Samples {
    pub fn of(&self, rpc: &str) -> &[Duration] {
        RPCS.iter()
            .position(|r| *r == rpc)
            .map(|i| self.rpc[i].as_slice())
            .unwrap_or_default()
    }

    /// CreateContainer + StartContainer of each lifecycle.
    pub fn create_start(&self) -> Vec<Duration> {
        self.rpc[1]
            .iter()
            .zip(&self.rpc[2])
            .map(|(a, b)| *a + *b)
            .collect()
    }
}

/// The outcome of one mode.
#[derive(Debug, Clone)]
pub struct ModeResult {
    pub mode: Mode,
    pub berthd: Samples,
    pub containerd: Samples,
    /// berthd's server-side latencies of the timed lifecycles, per RPC (from its trace).
    pub berthd_server: rpc_trace::Latencies,
}

/// Runs the lifecycle phase and prints its report.
pub async fn run(opts: &LifecycleOptions) -> Result<Vec<ModeResult>> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench lifecycle cannot run: {why}");
    }
    if opts.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let env = SideBySide::start("berth-bench-life-", &opts.env).await?;
    let result = measure(&env, opts).await;
    let (modes, done) = env.finish(result).await?;
    print_report(&modes, opts, done.versions, &done.host);
    Ok(modes)
}

async fn measure(env: &SideBySide, opts: &LifecycleOptions) -> Result<Vec<ModeResult>> {
    let mut clients = [
        env.rt(Runtime::Berthd).await?,
        env.rt(Runtime::Containerd).await?,
    ];
    let idx = |rt: Runtime| usize::from(rt == Runtime::Containerd);
    // Warm-up (untimed): the first pod creates berthd's bridge and table and containerd's
    // CNI bridge, and loads the images into the page cache.
    for i in 0..2 {
        for rt in Runtime::order(i) {
            lifecycle(env, &mut clients[idx(rt)], rt, &format!("warm{i}"))
                .await
                .context("warm-up")?;
        }
    }
    let mut out = Vec::new();
    for mode in [Mode::Alone, Mode::WithOther] {
        let mut others = Vec::new();
        if mode == Mode::WithOther {
            for rt in [Runtime::Berthd, Runtime::Containerd] {
                let c = &mut clients[idx(rt)];
                let (pod, _) = env.run_sleeping_pod(c, rt, "life-other").await?;
                others.push((rt, pod));
            }
        }
        let log_from = rpc_trace::log_len(&env.berthd.log_path);
        let mut samples = [Samples::default(), Samples::default()];
        for i in 0..opts.iterations {
            for rt in Runtime::order(i) {
                let name = format!("life-{}-{i}", mode.tag());
                if opts.pause_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(opts.pause_ms)).await;
                }
                let d = lifecycle(env, &mut clients[idx(rt)], rt, &name).await?;
                for (v, d) in samples[idx(rt)].rpc.iter_mut().zip(d) {
                    v.push(d);
                }
            }
            if (i + 1) % 10 == 0 {
                eprintln!("bench: {} lifecycles done ({})", i + 1, mode.describe());
            }
        }
        let berthd_server = rpc_trace::read(&env.berthd.log_path, log_from)?;
        for (rt, pod) in others {
            let c = &mut clients[idx(rt)];
            rpc::stop(c, &pod).await?;
            rpc::remove(c, &pod).await?;
        }
        let [berthd, containerd] = samples;
        out.push(ModeResult {
            mode,
            berthd,
            containerd,
            berthd_server,
        });
    }
    Ok(out)
}

/// One full lifecycle of pod `name` on `rt`; the latency of each of [`RPCS`]. Between the
/// RPCs, untimed checks that the pod has an IP and the container runs, so neither runtime
/// is measured skipping work.
async fn lifecycle(
    env: &SideBySide,
    c: &mut rpc::Runtime,
    rt: Runtime,
    name: &str,
) -> Result<[Duration; 7]> {
    let what = |rpc: &str| format!("{} {rpc} ({name})", rt.name());
    let cfg = env.pod_config(rt, name);
    let spec = CtrSpec::new("app", &env.busybox).cmd(&["sleep", "3600"]);
    let mut d = [Duration::ZERO; 7];
    let mut clock = Lap(Instant::now());
    let pod = rpc::run(c, &cfg).await.with_context(|| what(RPCS[0]))?;
    d[0] = clock.lap();
    let ctr = crpc::create(c, &pod, &spec.config, &cfg)
        .await
        .with_context(|| what(RPCS[1]))?;
    d[1] = clock.lap();
    crpc::start(c, &ctr).await.with_context(|| what(RPCS[2]))?;
    d[2] = clock.lap();
    if rpc::ip(c, &pod).await?.is_unspecified() {
        bail!("{} pod {name} has no IP", rt.name());
    }
    let st = crpc::status(c, &ctr).await?;
    if st.state != cri::ContainerState::ContainerRunning as i32 {
        bail!("{} container in {name} is not running: {st:?}", rt.name());
    }
    clock = Lap(Instant::now());
    crpc::stop(c, &ctr, 0)
        .await
        .with_context(|| what(RPCS[3]))?;
    d[3] = clock.lap();
    crpc::remove(c, &ctr).await.with_context(|| what(RPCS[4]))?;
    d[4] = clock.lap();
    rpc::stop(c, &pod).await.with_context(|| what(RPCS[5]))?;
    d[5] = clock.lap();
    rpc::remove(c, &pod).await.with_context(|| what(RPCS[6]))?;
    d[6] = clock.lap();
    Ok(d)
}

/// A stopwatch that restarts on every reading.
struct Lap(Instant);

impl Lap {
    fn lap(&mut self) -> Duration {
        let d = self.0.elapsed();
        self.0 = Instant::now();
        d
    }
}
