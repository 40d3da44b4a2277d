//! `bench docker` (issue 13 part 5): the Docker API of a release berthd against Debian's
//! dockerd 20.10 (its own containerd 1.6 and runc underneath), driven by the same docker
//! CLI binaries and docker-compose, with busybox from one local registry pulled into both
//! before timing. Per measured run the daemons alternate (A/B, then B/A), warm-up runs are
//! not counted. Measured: `docker run --rm IMAGE true`; `docker run -d IMAGE sleep 1000`
//! then `docker rm -f`; `docker-compose up -d` and `down -v` of the three-service file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::docker_api_report::{self as report, Daemon, Samples};
use crate::bench::dockerd::Dockerd;
use crate::bench::env::EnvOptions;
use crate::bench::host_cleanup::{self, clean_host};
use crate::bench::pods::{BERTHD_BRIDGE, BERTHD_SUBNET};
use crate::bench::rpc_trace::log_len;
use crate::docker::{CLI_20, CLI_28, Docker, unix_host};
use crate::{Berthd, BerthdOptions, Registry, TestImage, images};

/// Which compose file `bench docker` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeVariant {
    /// compose.yml (the `<project>_default` network) when berthd creates networks, else
    /// compose-bridge.yml.
    Auto,
    Default,
    Bridge,
    /// No compose part.
    Skip,
}

#[derive(Debug, Clone)]
pub struct DockerOptions {
    pub env: EnvOptions,
    /// Measured runs per daemon and CLI.
    pub runs: usize,
    /// Unmeasured runs per daemon first.
    pub warmup: usize,
    /// Measured compose up/down cycles per daemon.
    pub compose_runs: usize,
    pub compose: ComposeVariant,
    /// Also time the CLI 28 (`/usr/local/bin/docker`) when it is installed.
    pub cli28: bool,
}

impl Default for DockerOptions {
    fn default() -> Self {
        Self {
            env: EnvOptions {
                // One `docker api … elapsed_ms=` line per request: the server-side table.
                berthd_log: "info,berth_docker=debug".into(),
                ..Default::default()
            },
            runs: 30,
            warmup: 3,
            compose_runs: 10,
            compose: ComposeVariant::Auto,
            cli28: true,
        }
    }
}

/// One daemon with its clients.
struct Side {
    daemon: Daemon,
    clis: Vec<(&'static str, Docker)>,
    host: String,
    /// berthd's log, for its server-side timings.
    log: Option<PathBuf>,
}

/// Times one command; its stdout. Fails with the command's stderr.
fn timed(docker: &Docker, args: &[&str]) -> Result<(Duration, String)> {
    let t = Instant::now();
    let out = docker.output(args)?;
    let d = t.elapsed();
    if !out.status.success() {
        bail!(
            "{} {args:?} failed ({}): {}",
            docker.bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((d, String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// `docker run --rm`, then `run -d` + `rm -f`; records the three times and the pair under
/// `<cli>: …` names, and berthd's server-side endpoint times of each.
fn container_ops(side: &Side, image: &str, s: Option<&mut Samples>) -> Result<()> {
    let mut rows: Vec<(String, Duration)> = Vec::new();
    let mut server: Vec<(String, u64, u64)> = Vec::new();
    for (cli, docker) in &side.clis {
        let mark = side.log.as_deref().map(log_len);
        let (run, _) = timed(docker, &["run", "--rm", image, "true"])?;
        let mark2 = side.log.as_deref().map(log_len);
        let (start, id) = timed(docker, &["run", "-d", image, "sleep", "1000"])?;
        let mark3 = side.log.as_deref().map(log_len);
        let (rm, _) = timed(docker, &["rm", "-f", &id])?;
        rows.push((format!("{cli}: run --rm true"), run));
        rows.push((format!("{cli}: run -d sleep"), start));
        rows.push((format!("{cli}: rm -f"), rm));
        rows.push((format!("{cli}: run -d + rm -f"), start + rm));
        if let (Some(log), Some(a), Some(b), Some(c)) = (&side.log, mark, mark2, mark3) {
            server.push((format!("{cli}: run --rm true"), a, b));
            server.push((format!("{cli}: run -d sleep"), b, c));
            server.push((format!("{cli}: rm -f"), c, log_len(log)));
        }
    }
    if let Some(s) = s {
        for (op, d) in rows {
            s.record(&op, side.daemon, d);
        }
        if let Some(log) = &side.log {
            for (op, from, to) in server {
                s.record_server(&op, log, from, to)?;
            }
        }
    }
    Ok(())
}

fn compose_file(variant: ComposeVariant) -> PathBuf {
    let name = match variant {
        ComposeVariant::Bridge => "compose-bridge.yml",
        _ => "compose.yml",
    };
    crate::workspace_root()
        .join("tests/fixtures/bench")
        .join(name)
}

/// `docker-compose -p berthbench -f FILE ARGS` against `side`'s daemon.
fn compose(
    side: &Side,
    variant: ComposeVariant,
    image: &str,
    port: u16,
    args: &[&str],
) -> Result<(Duration, std::process::Output)> {
    let file = compose_file(variant);
    let t = Instant::now();
    let out = std::process::Command::new("docker-compose")
        .args(["--no-ansi", "-p", "berthbench", "-f"])
        .arg(&file)
        .args(args)
        .env("DOCKER_HOST", &side.host)
        .env("BENCH_IMAGE", image)
        .env("BENCH_PORT", port.to_string())
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("COMPOSE_API_VERSION")
        .stdin(std::process::Stdio::null())
        .output()
        .context("run docker-compose (install docker-compose)")?;
    Ok((t.elapsed(), out))
}

fn compose_ok(
    side: &Side,
    variant: ComposeVariant,
    image: &str,
    port: u16,
    args: &[&str],
) -> Result<Duration> {
    let (d, out) = compose(side, variant, image, port, args)?;
    if !out.status.success() {
        bail!(
            "{}: docker-compose {args:?} ({variant:?}) failed ({}): {}",
            side.daemon.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(d)
}

/// One unmeasured `up -d` + `down -v` per daemon; `Auto` picks compose.yml when berthd
/// creates the project network, else compose-bridge.yml. The variant that ran.
fn compose_warmup(
    sides: &[Side; 2],
    variant: ComposeVariant,
    image: &str,
    ports: [u16; 2],
) -> Result<ComposeVariant> {
    let mut v = variant;
    if v == ComposeVariant::Auto {
        let (_, out) = compose(
            &sides[0],
            ComposeVariant::Default,
            image,
            ports[0],
            &["up", "-d"],
        )?;
        let _ = compose(
            &sides[0],
            ComposeVariant::Default,
            image,
            ports[0],
            &["down", "-v"],
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        v = if out.status.success() {
            ComposeVariant::Default
        } else if stderr.contains("404") || stderr.to_lowercase().contains("network") {
            eprintln!(
                "bench: berthd cannot run compose.yml ({}); timing compose-bridge.yml",
                stderr.trim().lines().last().unwrap_or_default()
            );
            ComposeVariant::Bridge
        } else {
            bail!("berthd: docker-compose up -d failed: {}", stderr.trim());
        };
    }
    for (side, port) in sides.iter().zip(ports) {
        compose_ok(side, v, image, port, &["up", "-d"])?;
        compose_ok(side, v, image, port, &["down", "-v"])?;
    }
    Ok(v)
}

pub async fn run(opts: &DockerOptions) -> Result<()> {
    let registry = Registry::start().context("start docker-registry")?;
    let busybox = registry.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let image = busybox.reference.clone();
    let netns_before = host_cleanup::netns_list();
    // A short run dir: the monitors' socket paths must fit in a unix socket address.
    let run = tempfile::Builder::new().prefix("bcd").tempdir_in("/run")?;
    let extra = format!(
        "run_dir = {:?}\n[grpc]\nsocket = {:?}\n[log]\nlevel = {:?}\n\
         [network]\nbridge = {BERTHD_BRIDGE:?}\nsubnet = {BERTHD_SUBNET:?}\n",
        run.path().display().to_string(),
        run.path().join("berth.sock").display().to_string(),
        opts.env.berthd_log,
    );
    let mut berthd = Berthd::start_with(BerthdOptions::toml(extra))
        .await
        .context("start berthd")?;
    let mut dockerd = Dockerd::start(std::slice::from_ref(&registry.host))
        .await
        .context("start dockerd")?;
    let result = measure(opts, &berthd, &dockerd, &image).await;
    let result = match result {
        Ok(r) => Ok(r),
        Err(e) => Err(e.context(format!(
            "---- berthd log tail ----\n{}\n{}",
            berthd.log_tail(40),
            dockerd.log_tail()
        ))),
    };
    if let Some(dir) = &opts.env.logs_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::copy(&berthd.log_path, dir.join("berthd.log"))?;
        std::fs::copy(&dockerd.log_path, dir.join("dockerd.log"))?;
    }
    let mut problems = Vec::new();
    if let Err(e) = berthd.stop_and_clean().await {
        problems.push(format!("{e:#}"));
    }
    drop(berthd);
    drop(run);
    if let Err(e) = dockerd.stop() {
        problems.push(format!("{e:#}"));
    }
    drop(dockerd);
    let host = clean_host(&netns_before, &[]);
    let report = result?;
    println!("{report}");
    println!("host cleanup:");
    for line in host.iter().filter(|l| !l.starts_with("removed the cgroup")) {
        println!("  {line}");
    }
    if !problems.is_empty() {
        bail!("cleanup: {}", problems.join("\n"));
    }
    Ok(())
}

async fn measure(
    opts: &DockerOptions,
    berthd: &Berthd,
    dockerd: &Dockerd,
    image: &str,
) -> Result<String> {
    let mut clis = vec![("cli 20.10", CLI_20)];
    if opts.cli28 && std::path::Path::new(CLI_28).exists() {
        clis.push(("cli 28", CLI_28));
    }
    let side = |daemon: Daemon, host: String, log: Option<PathBuf>| -> Result<Side> {
        Ok(Side {
            daemon,
            clis: clis
                .iter()
                .map(|(n, b)| Ok((*n, Docker::new(b, host.clone())?)))
                .collect::<Result<_>>()?,
            host,
            log,
        })
    };
    let sides = [
        side(
            Daemon::Berthd,
            unix_host(berthd),
            Some(berthd.log_path.clone()),
        )?,
        side(Daemon::Dockerd, dockerd.host.clone(), None)?,
    ];
    let mut versions = BTreeMap::new();
    for s in &sides {
        let docker = &s.clis[0].1;
        docker.ok(&["pull", "-q", image])?;
        let v = docker.ok(&[
            "version",
            "-f",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])?;
        versions.insert(s.daemon.name(), v.trim().to_string());
        // `--rm` must answer only once the name is free again (as dockerd): the same name
        // twice in a row. Also a warm-up.
        for _ in 0..2 {
            docker.ok(&["run", "--rm", "--name", "berthbench-rm", image, "true"])?;
        }
        for _ in 0..opts.warmup {
            container_ops(s, image, None)?;
        }
    }
    let mut samples = Samples::default();
    for i in 0..opts.runs {
        for s in order(&sides, i) {
            container_ops(s, image, Some(&mut samples))?;
        }
    }
    let ports = [crate::free_port()?, crate::free_port()?];
    let mut variant = opts.compose;
    if variant != ComposeVariant::Skip {
        variant = compose_warmup(&sides, variant, image, ports)?;
        for i in 0..opts.compose_runs {
            for s in order(&sides, i) {
                let port = ports[s.daemon as usize];
                let mark = s.log.as_deref().map(log_len);
                let up = compose_ok(s, variant, image, port, &["up", "-d"])?;
                let mark2 = s.log.as_deref().map(log_len);
                let down = compose_ok(s, variant, image, port, &["down", "-v"])?;
                samples.record("compose up -d", s.daemon, up);
                samples.record("compose down -v", s.daemon, down);
                samples.record("compose up -d + down -v", s.daemon, up + down);
                if let (Some(log), Some(a), Some(b)) = (&s.log, mark, mark2) {
                    samples.record_server("compose up -d", log, a, b)?;
                    samples.record_server("compose down -v", log, b, log_len(log))?;
                }
            }
        }
    }
    Ok(report::render(opts, &versions, variant, &samples))
}

/// The two sides in run `i`'s order: berthd first on even runs, dockerd first on odd ones.
fn order(sides: &[Side; 2], i: usize) -> [&Side; 2] {
    if i.is_multiple_of(2) {
        [&sides[0], &sides[1]]
    } else {
        [&sides[1], &sides[0]]
    }
}
