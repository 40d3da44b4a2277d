//! Bench harness (not a test): berthd against the Debian containerd, phase by phase.
//!
//! ```text
//! cargo run --release -p berth-tests --bin bench -- pull [--iterations N] [--logs DIR]
//!     [--berthd-log FILTER] [--containerd-log LEVEL]
//! ```
//! Set `BERTHD_BIN` to a release berthd (scripts/bench.sh does). Exits non-zero only on
//! errors, never because berthd missed its target.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_tests::bench::containers::{self, ContainersOptions};
use berth_tests::bench::daemon::{self, DaemonOptions};
use berth_tests::bench::docker_api::{self, ComposeVariant, DockerOptions};
use berth_tests::bench::lifecycle::{self, LifecycleOptions};
use berth_tests::bench::pods::{self, PodsOptions};
use berth_tests::bench::pull::{self, PullOptions};
use berth_tests::bench::scale::{self, ScaleOptions};
use berth_tests::bench::streaming::{self, StreamingOptions};

const USAGE: &str = "usage: bench <phase> [options]

phases:
  pull    PullImage of N distinct ~50 MB images on berthd and containerd (--image text:
          a real-shaped image instead; --writer-mb N: another writer before each pull)
  daemon  the daemons themselves (RSS, PSS, USS, threads, fds) with 0, 10, 50 and 100
          running pods of one container each (--pod-counts), on both
  pods    RunPodSandbox/StopPodSandbox/RemovePodSandbox latency (p50, p99) on both
  containers
          CreateContainer+StartContainer latency (p50, p99) and per-pod memory (berth's
          monitor vs containerd's shim, RSS and PSS) with 10 and 50 pods, on both
  streaming
          exec round trip (Exec RPC + SPDY session of `true`, p50/p99) and port-forward
          throughput (one SPDY-forwarded download from httpd in the pod), on both
  lifecycle
          the full lifecycle of one pod at a time (RunPodSandbox with log_directory, Create,
          Start, Stop, Remove container, StopPodSandbox, RemovePodSandbox; p50/p99 per RPC),
          alone and beside one other running pod, on both (--iterations, default 30)
  scale   with --pods N (default 100) running pods: ListPodSandbox, ListContainers (--calls,
          default 20) and PodSandboxStatus of every pod (--status-rounds, default 2) p50/p99;
          RunPodSandbox at 1 and at N pods (--runs, default 20); --parallel pods (default 20)
          started at once; on both
  docker  the Docker API against Debian's dockerd 20.10 (own containerd + runc): `docker run
          --rm busybox true`, `run -d` + `rm -f` (p50/p99/mean, CLI 20.10 and 28), and
          docker-compose up -d / down -v of tests/fixtures/bench/compose.yml (--runs, default
          30; --compose-runs, default 10; --compose auto|default|bridge|skip)
  stats   ListContainerStats latency (p50, p99) with 50 running containers (one per pod),
          on both (--pod-counts sets the counts, --iterations the calls; default 20)

options:
  --iterations N        measured iterations (default 5)
  --image big|text      pull: 4 layers with 2 x 25 MiB random data (big, default), or
                        thousands of source-like text files, ~80 MB unpacked (text)
  --writer-mb N         pull: right before each timed pull, write N MB to a file on the
                        same filesystem without fsync or sync() (default 0: no writer)
  --pods N              pods: pods per runtime (default 60); scale: running pods (100)
  --block N             pods/containers: pods (containers) per block, runtimes alternate
                        per block (default 10)
  --containers N        containers: containers per runtime (default 60)
  --pod-counts A,B      containers: pod counts of the memory phase (default 10,50);
                        daemon: pod counts sampled (default 0,10,50,100)
  --execs N             streaming: exec round trips per runtime (default 200; --block sets
                        the block, default 20 there)
  --runs N              streaming: port-forward downloads per runtime (default 5); docker:
                        measured runs per daemon and CLI (default 30); scale:
                        timed RunPodSandbox at 1 and at N pods (default 20)
  --pause-ms N          lifecycle: idle time before each lifecycle (default 0)
  --calls N             scale: timed list calls (default 20)
  --status-rounds N     scale: PodSandboxStatus rounds over every pod (default 2)
  --parallel N          scale: pods started at once (default 20)
  --compose-runs N      docker: compose up/down cycles per daemon (default 10)
  --compose V           docker: auto (default: compose.yml if berthd creates networks, else
                        compose-bridge.yml), default, bridge or skip
  --warmup N            docker: unmeasured runs per daemon first (default 3)
  --no-cli28            docker: time only the CLI 20.10
  --mib N               streaming: download size in MiB (default 200)
  --logs DIR            copy berthd.log and containerd.log into DIR
  --berthd-log FILTER   berthd's log level (default \"info,berth_image=debug\")
  --containerd-log LVL  containerd's log level (default info; debug shows per-layer apply times)

env: BERTHD_BIN (berthd binary; default: cargo build of the debug berthd),
     CONTAINERD_BIN (default /usr/bin/containerd)";

struct Options {
    pull: PullOptions,
    scale: ScaleOptions,
    pause_ms: u64,
    pods: PodsOptions,
    ctrs: ContainersOptions,
    stream: StreamingOptions,
    docker: DockerOptions,
}

fn parse(args: &[String]) -> Result<(String, Options)> {
    let mut it = args.iter();
    let phase = match it.next() {
        Some(p) if p == "-h" || p == "--help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(p) => p.clone(),
        None => bail!("missing phase\n{USAGE}"),
    };
    let mut opts = PullOptions::default();
    let mut pods = PodsOptions::default();
    let mut ctrs = ContainersOptions::default();
    let mut stream = StreamingOptions::default();
    let mut scale = ScaleOptions::default();
    let mut pause_ms = 0;
    let mut docker = DockerOptions::default();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--iterations" | "-n" => {
                opts.iterations = value()?.parse().context("--iterations takes a number")?;
            }
            "--writer-mb" => {
                opts.writer_mb = value()?.parse().context("--writer-mb takes a number")?;
            }
            "--image" => {
                opts.text_image = match value()?.as_str() {
                    "text" => true,
                    "big" => false,
                    other => bail!("--image takes big or text, not {other:?}"),
                };
            }
            "--pods" => pods.pods = value()?.parse().context("--pods takes a number")?,
            "--block" => {
                pods.block = value()?.parse().context("--block takes a number")?;
                ctrs.block = pods.block;
                stream.block = pods.block;
            }
            "--containers" => {
                ctrs.containers = value()?.parse().context("--containers takes a number")?;
            }
            "--pod-counts" => {
                ctrs.pod_counts = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--pod-counts takes numbers: 10,50")?;
            }
            "--execs" => stream.execs = value()?.parse().context("--execs takes a number")?,
            "--runs" => stream.runs = value()?.parse().context("--runs takes a number")?,
            "--pause-ms" => {
                pause_ms = value()?.parse().context("--pause-ms takes a number")?;
            }
            "--calls" => scale.calls = value()?.parse().context("--calls takes a number")?,
            "--status-rounds" => {
                scale.status_rounds = value()?.parse().context("--status-rounds takes a number")?;
            }
            "--parallel" => {
                scale.parallel = value()?.parse().context("--parallel takes a number")?;
            }
            "--compose-runs" => {
                docker.compose_runs = value()?.parse().context("--compose-runs takes a number")?;
            }
            "--compose" => {
                docker.compose = match value()?.as_str() {
                    "auto" => ComposeVariant::Auto,
                    "default" => ComposeVariant::Default,
                    "bridge" => ComposeVariant::Bridge,
                    "skip" => ComposeVariant::Skip,
                    other => bail!("--compose takes auto, default, bridge or skip, not {other:?}"),
                };
            }
            "--no-cli28" => docker.cli28 = false,
            "--warmup" => docker.warmup = value()?.parse().context("--warmup takes a number")?,
            "--mib" => stream.mib = value()?.parse().context("--mib takes a number")?,
            "--logs" => opts.env.logs_dir = Some(PathBuf::from(value()?)),
            "--berthd-log" => opts.env.berthd_log = value()?.clone(),
            "--containerd-log" => opts.env.containerd_log = value()?.clone(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    pods.env = opts.env.clone();
    ctrs.env = opts.env.clone();
    stream.env = opts.env.clone();
    scale.env = opts.env.clone();
    docker.env.logs_dir = opts.env.logs_dir.clone();
    if args.iter().any(|a| a == "--berthd-log") {
        docker.env.berthd_log = opts.env.berthd_log.clone();
    }
    docker.runs = stream.runs;
    let all = Options {
        pull: opts,
        scale,
        pause_ms,
        pods,
        ctrs,
        stream,
        docker,
    };
    Ok((phase, all))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (phase, o) = parse(&args)?;
    let explicit = |flag: &str| args.iter().any(|a| a == flag);
    match phase.as_str() {
        "pull" => {
            pull::run(&o.pull).await?;
        }
        "pods" => {
            pods::run(&o.pods).await?;
        }
        "containers" => {
            containers::run(&o.ctrs).await?;
        }
        "streaming" => {
            streaming::run(&o.stream).await?;
        }
        "scale" => {
            let mut opts = o.scale.clone();
            if explicit("--pods") {
                opts.pods = o.pods.pods;
            }
            if explicit("--runs") {
                opts.runs = o.stream.runs;
            }
            scale::run(&opts).await?;
        }
        "lifecycle" => {
            let mut opts = LifecycleOptions {
                env: o.pull.env.clone(),
                ..Default::default()
            };
            if explicit("--iterations") || explicit("-n") {
                opts.iterations = o.pull.iterations;
            }
            opts.pause_ms = o.pause_ms;
            lifecycle::run(&opts).await?;
        }
        "daemon" => {
            let mut opts = DaemonOptions {
                env: o.pull.env.clone(),
                ..Default::default()
            };
            if explicit("--pod-counts") {
                opts.pod_counts = o.ctrs.pod_counts.clone();
            }
            daemon::run(&opts).await?;
        }
        "docker" => {
            let mut opts = o.docker.clone();
            if !explicit("--runs") {
                opts.runs = DockerOptions::default().runs;
            }
            docker_api::run(&opts).await?;
        }
        "stats" => {
            let opts = ContainersOptions {
                containers: 0,
                pod_counts: if explicit("--pod-counts") {
                    o.ctrs.pod_counts.clone()
                } else {
                    vec![50]
                },
                list_stats: if explicit("--iterations") || explicit("-n") {
                    o.pull.iterations
                } else {
                    20
                },
                ..o.ctrs
            };
            containers::run(&opts).await?;
        }
        other => bail!("unknown phase {other:?}\n{USAGE}"),
    }
    Ok(())
}
