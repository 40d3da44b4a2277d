//! `bench streaming`: the streaming server of berthd against containerd's (both answer
//! Exec/PortForward with a URL on their own HTTP server and speak the kubelet's protocols),
//! driven by the Rust client over SPDY, the kubelet's transport.
//!
//! - exec round trip: Exec RPC + SPDY session of `true` (connect, streams, exit status,
//!   close), `execs` per runtime in blocks of `block`, runtimes alternating which goes first.
//! - port-forward throughput: PortForward RPC + SPDY session + one forwarded connection
//!   downloading `mib` MiB from busybox httpd in the pod; `runs` per runtime, alternating.
//!
//! The runtimes are set up by [`SideBySide`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bench::env::EnvOptions;
use crate::bench::side_by_side::SideBySide;
use crate::bench::stats::Runtime;
use crate::bench::streaming_report::print_report;
use crate::containers::{CtrSpec, rpc as crpc};
use crate::pods::rpc;
use crate::stream_client::{self, ExecOptions, PortForwardTransport, PortForwarder, Transport};
use crate::streaming::session::{exec_url, port_forward_url};

const HTTP_PORT: u16 = 8080;
const OUT: ExecOptions = ExecOptions {
    stdin: false,
    stdout: true,
    stderr: true,
    tty: false,
};

#[derive(Debug, Clone)]
pub struct StreamingOptions {
    /// Exec round trips per runtime.
    pub execs: usize,
    /// Exec round trips per block (runtimes alternate per block).
    pub block: usize,
    /// Port-forward downloads per runtime.
    pub runs: usize,
    /// Size of the download (MiB).
    pub mib: usize,
    pub env: EnvOptions,
}

impl Default for StreamingOptions {
    fn default() -> Self {
        Self {
            execs: 200,
            block: 20,
            runs: 5,
            mib: 200,
            env: EnvOptions::default(),
        }
    }
}

/// One runtime's timings.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// The Exec RPC alone (part of `exec`).
    pub exec_rpc: Vec<Duration>,
    /// Exec RPC + the whole streaming session.
    pub exec: Vec<Duration>,
    /// Download time of each port-forward run (RPC + session + transfer).
    pub download: Vec<Duration>,
}

/// A pod per runtime with a sleeping container to exec in and httpd serving `/big`.
struct Target {
    c: rpc::Runtime,
    pod: String,
    ctr: String,
}

/// Runs the streaming phase and prints its report.
pub async fn run(opts: &StreamingOptions) -> Result<(Samples, Samples)> {
    let bins = ["docker-registry", "skopeo", "nft", "ip", "iptables", "runc"];
    if let Some(why) = crate::skip::missing(&bins, true) {
        bail!("bench streaming cannot run: {why}");
    }
    if opts.execs == 0 || opts.block == 0 || opts.runs == 0 || opts.mib == 0 {
        bail!("--execs, --block, --runs and --mib must be at least 1");
    }
    let env = SideBySide::start("berth-bench-stream-", &opts.env).await?;
    let result = measure(&env, opts).await;
    let ((b, c), done) = env.finish(result).await?;
    print_report(&b, &c, opts, &done);
    Ok((b, c))
}

async fn setup(env: &SideBySide, rt: Runtime, mib: usize) -> Result<Target> {
    let mut c = env.rt(rt).await?;
    let cfg = env.pod_config(rt, &format!("stream-{}", rt.name()));
    let pod = rpc::run(&mut c, &cfg)
        .await
        .with_context(|| format!("{} RunPodSandbox", rt.name()))?;
    let mut ids = Vec::new();
    let script = format!(
        "mkdir -p /www && dd if=/dev/urandom of=/www/big bs=1048576 count={mib} 2>/dev/null && touch /www/ready; exec httpd -f -p {HTTP_PORT} -h /www"
    );
    for spec in [
        CtrSpec::new("sleeper", &env.busybox).cmd(&["sleep", "3600"]),
        CtrSpec::new("httpd", &env.busybox).sh(&script),
    ] {
        let id = crpc::create(&mut c, &pod, &spec.config, &cfg)
            .await
            .with_context(|| format!("{} CreateContainer", rt.name()))?;
        crpc::start(&mut c, &id)
            .await
            .with_context(|| format!("{} StartContainer", rt.name()))?;
        ids.push(id);
    }
    let until = Instant::now() + Duration::from_secs(120);
    while crpc::exec_ok(&mut c, &ids[1], &["test", "-f", "/www/ready"])
        .await
        .is_err()
    {
        ensure!(
            Instant::now() < until,
            "{}: httpd's file was not written",
            rt.name()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Target {
        c,
        pod,
        ctr: ids.swap_remove(0),
    })
}

/// One exec round trip: (Exec RPC, RPC + session).
async fn exec_once(t: &mut Target) -> Result<(Duration, Duration)> {
    let start = Instant::now();
    let url = exec_url(&mut t.c, &t.ctr, &["true"], OUT).await?;
    let rpc = start.elapsed();
    let r = stream_client::exec(&url, Transport::Spdy, OUT, None::<&'static [u8]>).await?;
    let all = start.elapsed();
    ensure!(r.exit_code == 0, "exec true: {r:?}");
    Ok((rpc, all))
}

/// One download of `/big` through a port-forward; checks its size.
async fn download(t: &mut Target, mib: usize) -> Result<Duration> {
    let start = Instant::now();
    let url = port_forward_url(&mut t.c, &t.pod).await?;
    let fwd = PortForwarder::connect(&url, PortForwardTransport::Spdy).await?;
    let mut conn = fwd.open(HTTP_PORT).await?;
    conn.write_all(b"GET /big HTTP/1.0\r\nHost: x\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 256 << 10];
    let mut head = Vec::new();
    let mut body = 0usize;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if body == 0 && !head.ends_with(b"\r\n\r\n") {
            head.extend_from_slice(&buf[..n]);
            if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                body = head.len() - at - 4;
                head.truncate(at + 4);
            }
        } else {
            body += n;
        }
    }
    let took = start.elapsed();
    ensure!(
        String::from_utf8_lossy(&head).contains(" 200 "),
        "GET /big: {:?}",
        String::from_utf8_lossy(&head)
    );
    ensure!(
        body == mib << 20,
        "GET /big: {body} bytes, want {}",
        mib << 20
    );
    conn.shutdown().await?;
    fwd.close().await;
    Ok(took)
}

async fn measure(env: &SideBySide, opts: &StreamingOptions) -> Result<(Samples, Samples)> {
    let mut targets = [
        setup(env, Runtime::Berthd, opts.mib).await?,
        setup(env, Runtime::Containerd, opts.mib).await?,
    ];
    let idx = |rt: Runtime| usize::from(rt == Runtime::Containerd);
    let mut samples = [Samples::default(), Samples::default()];
    for rt in Runtime::order(0) {
        for _ in 0..5 {
            exec_once(&mut targets[idx(rt)])
                .await
                .with_context(|| format!("{} warm-up exec", rt.name()))?;
        }
    }
    let blocks = opts.execs.div_ceil(opts.block);
    for b in 0..blocks {
        let n = opts.block.min(opts.execs - b * opts.block);
        for rt in Runtime::order(b) {
            let t = &mut targets[idx(rt)];
            let s = &mut samples[idx(rt)];
            for i in 0..n {
                let (rpc, all) = exec_once(t)
                    .await
                    .with_context(|| format!("{} exec {b}/{i}", rt.name()))?;
                s.exec_rpc.push(rpc);
                s.exec.push(all);
            }
        }
    }
    eprintln!("bench: {} exec round trips per runtime done", opts.execs);
    for r in 0..opts.runs {
        for rt in Runtime::order(r) {
            let d = download(&mut targets[idx(rt)], opts.mib)
                .await
                .with_context(|| format!("{} port-forward run {r}", rt.name()))?;
            eprintln!(
                "bench: port-forward run {r}: {} {:.1} MB/s",
                rt.name(),
                mb_per_s(opts.mib, d)
            );
            samples[idx(rt)].download.push(d);
        }
    }
    let [b, c] = samples;
    Ok((b, c))
}

/// MB/s (10^6 bytes) of `mib` MiB in `d`.
pub fn mb_per_s(mib: usize, d: Duration) -> f64 {
    (mib << 20) as f64 / 1e6 / d.as_secs_f64().max(f64::MIN_POSITIVE)
}
