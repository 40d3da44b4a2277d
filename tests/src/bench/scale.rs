//! `bench scale`: berthd and containerd with many running pods (issue 12, part 5). Each
//! runtime in turn (berthd first; the other's pods are gone by then):
//!
//! 1. `parallel` pods started at once, as the kubelet does (RunPodSandbox, CreateContainer,
//!    StartContainer of busybox `sleep 3600` per pod, each pod a task of its own on one
//!    shared connection): the total time until all run, and any error. Then removed.
//! 2. One pod running: `runs` RunPodSandbox of one more pod (each stopped and removed,
//!    untimed).
//! 3. `pods` running pods (one container each): `calls` timed ListPodSandbox and
//!    ListContainers (each checked to answer them all), and PodSandboxStatus of every pod,
//!    `status_rounds` times; then `runs` RunPodSandbox of one more pod again.
//!
//! The runtimes are set up by [`SideBySide`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::env::EnvOptions;
use crate::bench::scale_report::print_report;
use crate::bench::side_by_side::SideBySide;
use crate::bench::stats::Runtime;
use crate::containers::rpc as crpc;
use crate::pods::rpc;

#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Running pods (one container each) for the list and status calls.
    pub pods: usize,
    /// Timed ListPodSandbox and ListContainers calls.
    pub calls: usize,
    /// Rounds of PodSandboxStatus over every pod.
    pub status_rounds: usize,
    /// Timed RunPodSandbox at 1 pod and at `pods` pods.
    pub runs: usize,
    /// Pods started at once.
    pub parallel: usize,
    pub env: EnvOptions,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self {
            pods: 100,
            calls: 20,
            status_rounds: 2,
            runs: 20,
            parallel: 20,
            env: EnvOptions::default(),
        }
    }
}

/// One runtime's figures.
#[derive(Debug, Clone, Default)]
pub struct ScaleSamples {
    pub list_pods: Vec<Duration>,
    pub list_containers: Vec<Duration>,
    pub pod_status: Vec<Duration>,
    /// RunPodSandbox with one other pod running.
    pub run_at_1: Vec<Duration>,
    /// RunPodSandbox with `pods` pods running.
    pub run_at_n: Vec<Duration>,
    /// `parallel` pods (with their containers) started at once.
    pub parallel_total: Duration,
    /// Time to start the `pods` pods one after the other (pod + container each).
    pub fill_total: Duration,
}

/// Runs the scale phase and prints its report.
pub async fn run(opts: &ScaleOptions) -> Result<(ScaleSamples, ScaleSamples)> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench scale cannot run: {why}");
    }
    if opts.pods < 2 || opts.calls == 0 || opts.runs == 0 || opts.parallel == 0 {
        bail!("--pods must be at least 2, --calls, --runs and --parallel at least 1");
    }
    let env = SideBySide::start("berth-bench-scale-", &opts.env).await?;
    let result = async {
        let b = measure(&env, Runtime::Berthd, opts).await?;
        let c = measure(&env, Runtime::Containerd, opts).await?;
        Ok((b, c))
    }
    .await;
    let ((b, c), done) = env.finish(result).await?;
    print_report(&b, &c, opts, done.versions, &done.host);
    Ok((b, c))
}

async fn measure(env: &SideBySide, rt: Runtime, opts: &ScaleOptions) -> Result<ScaleSamples> {
    let mut s = ScaleSamples::default();
    let mut c = env.rt(rt).await?;
    // Warm-up (untimed): the first pod creates the bridge and loads the images.
    let (pod, _) = env.run_sleeping_pod(&mut c, rt, "scale-warm").await?;
    rpc::stop(&mut c, &pod).await?;
    rpc::remove(&mut c, &pod).await?;

    s.parallel_total = parallel(env, &c, rt, opts.parallel).await?;
    eprintln!(
        "bench: {}: {} pods at once in {:.2}s",
        rt.name(),
        opts.parallel,
        s.parallel_total.as_secs_f64()
    );
    remove_all(&mut c, rt, 0).await?;

    env.run_sleeping_pod(&mut c, rt, "scale-0").await?;
    s.run_at_1 = runs(env, &mut c, rt, "at1", opts.runs).await?;

    let t = Instant::now();
    for i in 1..opts.pods {
        env.run_sleeping_pod(&mut c, rt, &format!("scale-{i}"))
            .await?;
    }
    s.fill_total = t.elapsed();
    eprintln!(
        "bench: {}: {} pods running (filled in {:.1}s)",
        rt.name(),
        opts.pods,
        s.fill_total.as_secs_f64()
    );
    let n = opts.pods;
    for _ in 0..opts.calls {
        let t = Instant::now();
        let got = rpc::list(&mut c, None)
            .await
            .context("ListPodSandbox")?
            .len();
        s.list_pods.push(t.elapsed());
        check(rt, "ListPodSandbox", got, n)?;
        let t = Instant::now();
        let got = crpc::list(&mut c, None).await?.len();
        s.list_containers.push(t.elapsed());
        check(rt, "ListContainers", got, n)?;
    }
    let ids: Vec<String> = rpc::list(&mut c, None)
        .await
        .context("ListPodSandbox")?
        .into_iter()
        .map(|p| p.id)
        .collect();
    for _ in 0..opts.status_rounds {
        for id in &ids {
            let t = Instant::now();
            rpc::status(&mut c, id, false)
                .await
                .with_context(|| format!("{} PodSandboxStatus {id}", rt.name()))?;
            s.pod_status.push(t.elapsed());
        }
    }
    s.run_at_n = runs(env, &mut c, rt, "atn", opts.runs).await?;
    remove_all(&mut c, rt, n).await?;
    Ok(s)
}

fn check(rt: Runtime, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        bail!("{} {what} answered {got} items, {want} expected", rt.name());
    }
    Ok(())
}

/// `n` timed RunPodSandbox of one more pod, each stopped and removed (untimed).
async fn runs(
    env: &SideBySide,
    c: &mut rpc::Runtime,
    rt: Runtime,
    tag: &str,
    n: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let cfg = env.pod_config(rt, &format!("scale-run-{tag}-{i}"));
        let t = Instant::now();
        let id = rpc::run(c, &cfg)
            .await
            .with_context(|| format!("{} RunPodSandbox ({tag} {i})", rt.name()))?;
        out.push(t.elapsed());
        rpc::stop(c, &id).await?;
        rpc::remove(c, &id).await?;
    }
    Ok(out)
}

/// `n` pods with a container each started at once; the time until all run.
async fn parallel(env: &SideBySide, c: &rpc::Runtime, rt: Runtime, n: usize) -> Result<Duration> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut c = c.clone();
        let cfg = env.pod_config(rt, &format!("scale-par-{i}"));
        let spec = crate::containers::CtrSpec::new("app", &env.busybox).cmd(&["sleep", "3600"]);
        tasks.spawn(async move {
            let pod = rpc::run(&mut c, &cfg)
                .await
                .map_err(|s| anyhow::anyhow!("RunPodSandbox {i}: {s}"))?;
            let id = crpc::create(&mut c, &pod, &spec.config, &cfg)
                .await
                .map_err(|s| anyhow::anyhow!("CreateContainer {i}: {s}"))?;
            crpc::start(&mut c, &id)
                .await
                .map_err(|s| anyhow::anyhow!("StartContainer {i}: {s}"))?;
            anyhow::Ok(())
        });
    }
    let mut errors = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(format!("task: {e}")),
        }
    }
    let took = t.elapsed();
    if !errors.is_empty() {
        bail!(
            "{}: {} of {n} parallel pods failed: {}",
            rt.name(),
            errors.len(),
            errors.join("; ")
        );
    }
    Ok(took)
}

/// Removes every container and pod (untimed); checks there were `want` pods (0: any).
async fn remove_all(c: &mut rpc::Runtime, rt: Runtime, want: usize) -> Result<()> {
    crpc::remove_all(c).await?;
    let n = rpc::remove_all(c).await?;
    if want > 0 && n != want {
        bail!("{}: {n} pods removed, {want} expected", rt.name());
    }
    Ok(())
}
