//! Exec and PortForward through berthd's streaming server driven by the Rust client
//! (`berth_tests::stream_client`), with both transports each: many sessions at once, clients
//! that vanish mid-stream (nothing may be left behind: no process in the container, no fd in
//! the pod monitor or berthd), the URL tokens' single use and expiry, and Exec refused for
//! containers that are not running. Each test has its own berthd and ends with
//! [`CtrTest::finish`], which fails on any leftover.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_tests::containers::{CtrTest, Pod, rpc};
use berth_tests::pods::rpc::Runtime;
use berth_tests::stream_client::{
    self, ExecOptions, PortForwardTransport, PortForwarder, Transport,
};
use berth_tests::streaming::cut_proxy::CutProxy;
use berth_tests::streaming::session::{exec_url, fd_count, monitor_pid, port_forward_url};
use berth_tests::{finish, skip};
use futures::future::try_join_all;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXEC_TRANSPORTS: [Transport; 2] = [Transport::Spdy, Transport::WebSocket];
/// WebSocket port-forward carries one connection per socket; many connections over one
/// WebSocket session is the KEP-4006 tunnel (what kubectl uses over WebSocket).
const PF_TRANSPORTS: [PortForwardTransport; 2] = [
    PortForwardTransport::Spdy,
    PortForwardTransport::SpdyOverWebSocket,
];
const N: usize = 20;
const HTTP_PORT: u16 = 8080;

macro_rules! client_test {
    ($name:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let bins = ["docker-registry", "skopeo", "busybox", "nft", "ip"];
            if skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            finish($body().await);
        }
    };
}

const IO: ExecOptions = ExecOptions {
    stdin: true,
    stdout: true,
    stderr: true,
    tty: false,
};
const OUT: ExecOptions = ExecOptions {
    stdin: false,
    stdout: true,
    stderr: true,
    tty: false,
};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A pod with a `sleep` container to exec in and a busybox httpd on [`HTTP_PORT`] serving
/// `/f0`..`/f{N-1}` (distinct random files of `kib` KiB each) and `/big` (`big_mib` MiB).
/// Returns the sleeper's id, the httpd's id and the sha256 of each `/f<i>`.
async fn setup(
    t: &CtrTest,
    c: &mut Runtime,
    name: &str,
    kib: usize,
    big_mib: usize,
) -> Result<(Pod, String, String, Vec<String>)> {
    let pod = t.pod(c, name).await?;
    let sleeper = t
        .run(c, &pod, &t.spec("sleeper").cmd(&["sleep", "3600"]))
        .await?;
    let script = format!(
        "mkdir -p /www && for i in $(seq 0 {last}); do dd if=/dev/urandom of=/www/f$i bs=1024 count={kib} 2>/dev/null; done && dd if=/dev/urandom of=/www/big bs=1048576 count={big_mib} 2>/dev/null && touch /www/ready; exec httpd -f -p {HTTP_PORT} -h /www",
        last = N - 1
    );
    let httpd = t.run(c, &pod, &t.spec("httpd").sh(&script)).await?;
    let until = Instant::now() + Duration::from_secs(60);
    while rpc::exec_ok(c, &httpd, &["test", "-f", "/www/ready"])
        .await
        .is_err()
    {
        ensure!(Instant::now() < until, "httpd's files were not written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sums = rpc::exec_ok(c, &httpd, &["sh", "-c", "cd /www && sha256sum f*"]).await?;
    let mut want = vec![String::new(); N];
    for line in sums.lines() {
        let mut it = line.split_whitespace();
        let (Some(sum), Some(file)) = (it.next(), it.next()) else {
            continue;
        };
        let i: usize = file.trim_start_matches('f').parse()?;
        want[i] = sum.to_string();
    }
    ensure!(want.iter().all(|s| s.len() == 64), "sha256sum: {sums}");
    Ok((pod, sleeper, httpd, want))
}

/// `GET path` over an open forwarded connection; returns the body.
async fn http_get<S>(conn: &mut S, path: &str) -> Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).await?;
    let Some(at) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("GET {path}: no response head in {} bytes", resp.len());
    };
    let head = text(&resp[..at]);
    ensure!(head.starts_with("HTTP/1."), "GET {path}: {head}");
    ensure!(head.contains(" 200 "), "GET {path}: {head}");
    Ok(resp.split_off(at + 4))
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

client_test!(client_concurrent_exec, concurrent_exec_body);
async fn concurrent_exec_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "cexec").await?;
    let id = t
        .run(&mut c, &pod, &t.spec("sleeper").cmd(&["sleep", "3600"]))
        .await?;
    for tr in EXEC_TRANSPORTS {
        let mut urls = Vec::new();
        for i in 0..N {
            let script = format!("cat; echo done-{i} >&2; exit {}", i % 7);
            urls.push(exec_url(&mut c, &id, &["sh", "-c", &script], IO).await?);
        }
        let runs = urls.into_iter().enumerate().map(|(i, url)| async move {
            // Distinct and large enough to need several frames.
            let input: Vec<u8> = format!("session {i} line\n").repeat(2000).into_bytes();
            let r = stream_client::exec(&url, tr, IO, Some(std::io::Cursor::new(input.clone())))
                .await
                .with_context(|| format!("{tr:?} exec {i}"))?;
            ensure!(
                r.stdout == input,
                "{tr:?} exec {i}: stdout {} bytes, want {}",
                r.stdout.len(),
                input.len()
            );
            ensure!(
                text(&r.stderr) == format!("done-{i}\n"),
                "{tr:?} exec {i}: stderr {:?}",
                text(&r.stderr)
            );
            ensure!(
                r.exit_code == (i % 7) as i32,
                "{tr:?} exec {i}: exit {}",
                r.exit_code
            );
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(120), try_join_all(runs))
            .await
            .with_context(|| format!("{tr:?}: {N} concurrent execs timed out"))??;
    }
    no_exec_left(&mut c, &id, Duration::from_secs(10)).await?;
    drop(c);
    t.finish().await
}

client_test!(client_concurrent_port_forward, concurrent_pf_body);
async fn concurrent_pf_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let (pod, _sleeper, _httpd, want) = setup(&t, &mut c, "cpf", 512, 1).await?;
    for tr in PF_TRANSPORTS {
        let url = port_forward_url(&mut c, &pod.id).await?;
        let fwd = PortForwarder::connect(&url, tr).await?;
        let fwd = &fwd;
        let want = &want;
        let n: usize = std::env::var("PFN")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(N);
        let gets = (0..n).map(|i| async move {
            let mut conn = fwd.open(HTTP_PORT).await?;
            let body = http_get(&mut conn, &format!("/f{i}"))
                .await
                .with_context(|| format!("{tr:?} connection {i}"))?;
            ensure!(
                body.len() == 512 << 10 && sha256(&body) == want[i],
                "{tr:?} connection {i}: {} bytes, sha256 {}",
                body.len(),
                sha256(&body)
            );
            // The local side is done (client-go half-closes the data stream then).
            conn.shutdown().await?;
            let err = conn.error_message().await?;
            ensure!(err.is_none(), "{tr:?} connection {i}: error {err:?}");
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(120), try_join_all(gets))
            .await
            .with_context(|| format!("{tr:?}: {N} concurrent connections timed out"))??;
        fwd.close().await;
    }
    drop(c);
    t.finish().await
}

/// Fails unless, within `within`, no exec'd process (`cat`, `sleep 1000`) is left in `id`.
async fn no_exec_left(c: &mut Runtime, id: &str, within: Duration) -> Result<()> {
    let until = Instant::now() + within;
    loop {
        let ps = rpc::exec_ok(c, id, &["ps", "-o", "args"]).await?;
        let left: Vec<&str> = ps
            .lines()
            .skip(1)
            .filter(|l| {
                l.starts_with("cat") || l.starts_with("sleep 1000") || l.starts_with("sh -c cat")
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("exec processes left in {id} after {within:?}: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits up to `within` until both exec processes (`cat`, `sleep 1000`) run in `id`. A
/// session is open before its process has exec'd (the exec init sets it up first), so the
/// first look may still see `init --exec`.
async fn execs_running(c: &mut Runtime, id: &str, within: Duration) -> Result<()> {
    let until = Instant::now() + within;
    loop {
        let ps = rpc::exec_ok(c, id, &["ps", "-o", "args"]).await?;
        let running = |cmd: &str| ps.lines().any(|l| l.trim() == cmd);
        if running("cat") && running("sleep 1000") {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("the exec processes are not running after {within:?}: {ps}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `within` for `pid`'s fd count to come back to at most `base`.
async fn fds_back(what: &str, pid: u32, base: usize, within: Duration) -> Result<()> {
    let until = Instant::now() + within;
    loop {
        let now = fd_count(pid).with_context(|| format!("{what} (pid {pid}) is gone"))?;
        if now <= base {
            return Ok(());
        }
        if Instant::now() >= until {
            let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect();
            bail!("{what} has {now} fds {within:?} after the disconnect, {base} before: {fds:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The URL with its host:port replaced by `authority`.
fn via(url: &str, authority: &str) -> Result<String> {
    let rest = url.strip_prefix("http://").context("not an http URL")?;
    let path = &rest[rest.find('/').context("URL without a path")?..];
    Ok(format!("http://{authority}{path}"))
}

fn authority(url: &str) -> Result<std::net::SocketAddr> {
    let rest = url.strip_prefix("http://").context("not an http URL")?;
    let host = &rest[..rest.find('/').context("URL without a path")?];
    Ok(host.parse()?)
}

client_test!(client_disconnect_leaves_nothing, disconnect_body);
async fn disconnect_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let (pod, sleeper, _httpd, _) = setup(&t, &mut c, "gone", 4, 64).await?;
    let berthd = t.t.d.pid().context("berthd pid")?;
    let monitor = monitor_pid(&t.t.run_dir, &pod.id).context("monitor pid")?;
    for (tr, pf) in EXEC_TRANSPORTS.into_iter().zip(PF_TRANSPORTS) {
        // Settle, then the counts before the sessions.
        no_exec_left(&mut c, &sleeper, Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let base_monitor = fd_count(monitor).context("monitor gone")?;
        let base_berthd = fd_count(berthd).context("berthd gone")?;

        let cat = exec_url(&mut c, &sleeper, &["cat"], IO).await?;
        let sleep = exec_url(&mut c, &sleeper, &["sleep", "1000"], OUT).await?;
        let fwd = port_forward_url(&mut c, &pod.id).await?;
        // Everything goes through a proxy we can cut: a real disconnect, not a clean close.
        let proxy = CutProxy::start(authority(&cat)?).await?;
        let host = proxy.addr.to_string();

        let mut cat = stream_client::exec_interactive(&via(&cat, &host)?, tr, IO).await?;
        let sleep = stream_client::exec_interactive(&via(&sleep, &host)?, tr, OUT).await?;
        let fwd = PortForwarder::connect(&via(&fwd, &host)?, pf).await?;
        let mut conn = fwd.open(HTTP_PORT).await?;

        // cat echoes an endless input; the download is under way.
        let mut stdin = cat.stdin.take().context("cat stdin")?;
        let mut stdout = cat.stdout.take().context("cat stdout")?;
        let feeder = tokio::spawn(async move {
            let block = vec![b'x'; 16 << 10];
            while stdin.write_all(&block).await.is_ok() {}
        });
        let echo = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            let mut n = 0usize;
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        });
        conn.write_all(b"GET /big HTTP/1.0\r\nHost: x\r\n\r\n")
            .await?;
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 << 10];
        while got < 4 << 20 {
            let k = conn.read(&mut buf).await?;
            ensure!(k > 0, "{pf:?}: download ended after {got} bytes");
            got += k;
        }
        execs_running(&mut c, &sleeper, Duration::from_secs(10))
            .await
            .with_context(|| format!("{tr:?}"))?;

        // Cut every connection mid-stream, then drop what the client still holds.
        proxy.cut().await;
        let echoed = tokio::time::timeout(Duration::from_secs(10), echo)
            .await
            .context("cat's stdout did not end after the disconnect")??;
        ensure!(
            echoed > 0,
            "{tr:?}: cat echoed nothing before the disconnect"
        );
        feeder.abort();
        drop((cat, sleep, conn, fwd));

        let settle = Duration::from_secs(10);
        no_exec_left(&mut c, &sleeper, settle)
            .await
            .with_context(|| format!("{tr:?} / {pf:?}"))?;
        fds_back("the pod monitor", monitor, base_monitor, settle)
            .await
            .with_context(|| format!("{tr:?} / {pf:?}"))?;
        fds_back("berthd", berthd, base_berthd, settle)
            .await
            .with_context(|| format!("{tr:?} / {pf:?}"))?;
    }
    drop(c);
    t.finish().await
}

/// Expects the session at `url` to be refused with HTTP 404.
async fn refused_404(what: &str, url: &str, tr: Transport) -> Result<()> {
    match stream_client::exec(url, tr, OUT, None::<&'static [u8]>).await {
        Ok(r) => bail!("{what} ({tr:?}): the session ran: {r:?}"),
        Err(e) => {
            let msg = format!("{e:#}");
            ensure!(msg.contains("404"), "{what} ({tr:?}): want 404, got {msg}");
            Ok(())
        }
    }
}

client_test!(client_tokens_single_use_and_expiring, tokens_body);
async fn tokens_body() -> Result<()> {
    let t = CtrTest::start_with("[streaming]\ntoken_ttl_secs = 1\n", Vec::new()).await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "tokens").await?;
    let id = t
        .run(&mut c, &pod, &t.spec("sleeper").cmd(&["sleep", "3600"]))
        .await?;
    for tr in EXEC_TRANSPORTS {
        // Used twice: the second is refused.
        let url = exec_url(&mut c, &id, &["echo", "once"], OUT).await?;
        let r = stream_client::exec(&url, tr, OUT, None::<&'static [u8]>).await?;
        ensure!(
            text(&r.stdout) == "once\n" && r.exit_code == 0,
            "{tr:?}: {r:?}"
        );
        refused_404("a URL used twice", &url, tr).await?;

        // Older than token_ttl_secs.
        let url = exec_url(&mut c, &id, &["echo", "late"], OUT).await?;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        refused_404("an expired URL", &url, tr).await?;

        // A token berthd never handed out (same shape as a real one).
        let url = exec_url(&mut c, &id, &["echo", "x"], OUT).await?;
        let (base, token) = url.rsplit_once('/').context("URL without a token")?;
        let fake: String = token
            .chars()
            .map(|ch| if ch == 'A' { 'B' } else { 'A' })
            .collect();
        refused_404("a made-up token", &format!("{base}/{fake}"), tr).await?;
        refused_404("a made-up token", &format!("{base}/nope"), tr).await?;
    }
    // A port-forward URL is single-use too.
    let url = port_forward_url(&mut c, &pod.id).await?;
    let fwd = PortForwarder::connect(&url, PortForwardTransport::Spdy).await?;
    fwd.close().await;
    match PortForwarder::connect(&url, PortForwardTransport::Spdy).await {
        Ok(_) => bail!("a port-forward URL worked twice"),
        Err(e) => ensure!(format!("{e:#}").contains("404"), "{e:#}"),
    }
    drop(c);
    t.finish().await
}

client_test!(client_exec_refused_when_not_running, not_running_body);
async fn not_running_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "norun").await?;
    let done = t.run(&mut c, &pod, &t.spec("done").cmd(&["true"])).await?;
    rpc::wait_exited(&mut c, &done, Duration::from_secs(30)).await?;
    let created = t
        .create(&mut c, &pod, &t.spec("created").cmd(&["sleep", "3600"]))
        .await?;
    for (what, id, code) in [
        (
            "an exited container",
            done.as_str(),
            tonic::Code::FailedPrecondition,
        ),
        (
            "a created, never started container",
            created.as_str(),
            tonic::Code::FailedPrecondition,
        ),
        (
            "a missing container",
            "0123456789abcdef",
            tonic::Code::NotFound,
        ),
    ] {
        match exec_url(&mut c, id, &["true"], OUT).await {
            Ok(url) => bail!("Exec in {what} answered {url}"),
            Err(s) => ensure!(
                s.code() == code,
                "Exec in {what}: want {code:?}, got {:?}: {}",
                s.code(),
                s.message()
            ),
        }
    }
    drop(c);
    t.finish().await
}
