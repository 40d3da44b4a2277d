//! Exec, Attach and PortForward through berthd's streaming server, driven by crictl 1.32 (the
//! rig's, the reference client) with both of its transports (SPDY and WebSocket): piped and
//! interactive exec, attach, port-forward of 100 MB with a checksum, host-network pods.
//! Each test has its own berthd, registry, bridge and cgroup parent and ends with
//! [`CtrTest::finish`], which fails on any leftover.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::containers::{CtrTest, rpc};
use berth_tests::pods::PodSpec;
use berth_tests::streaming::crictl::{self, Crictl};
use berth_tests::streaming::{free_port, http_get_sha256, pty_drive};
use berth_tests::{finish, skip};

const TRANSPORTS: [&str; 2] = ["spdy", "websocket"];

macro_rules! stream_test {
    ($name:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let bins = [
                "docker-registry",
                "skopeo",
                "busybox",
                "nft",
                "ip",
                "python3",
            ];
            if skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            let Some(bin) = crictl::path() else {
                eprintln!(
                    "SKIP {}: ../shared/tools/cri-rig/bin/crictl not found",
                    stringify!($name)
                );
                return;
            };
            finish($body(bin).await);
        }
    };
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

stream_test!(crictl_exec_piped_and_interactive, exec_body);
async fn exec_body(bin: std::path::PathBuf) -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "exec").await?;
    let id = t
        .run(&mut c, &pod, &t.spec("sleeper").cmd(&["sleep", "3600"]))
        .await?;
    let cc = Crictl::new(bin, &t.t.d.socket);
    for tr in TRANSPORTS {
        // Piped stdin, stdout and stderr apart, the exit code.
        let out = cc.run(
            &[
                "exec",
                "-i",
                "--transport",
                tr,
                &id,
                "sh",
                "-c",
                "cat; echo to-stderr >&2; exit 3",
            ],
            b"hello from stdin\n",
            Duration::from_secs(60),
        )?;
        ensure!(
            text(&out.stdout) == "hello from stdin\n",
            "{tr}: stdout {:?} stderr {:?}",
            text(&out.stdout),
            text(&out.stderr)
        );
        ensure!(
            text(&out.stderr).contains("to-stderr"),
            "{tr}: stderr {:?}",
            text(&out.stderr)
        );
        ensure!(
            !text(&out.stdout).contains("to-stderr"),
            "{tr}: stderr leaked into stdout"
        );
        ensure!(
            out.status.code() == Some(3) || text(&out.stderr).contains("exit code 3"),
            "{tr}: status {:?}, stderr {:?}",
            out.status,
            text(&out.stderr)
        );
        // Success exits 0.
        let out = cc.run(
            &["exec", "--transport", tr, &id, "echo", "ok"],
            b"",
            Duration::from_secs(60),
        )?;
        ensure!(
            out.status.success() && text(&out.stdout) == "ok\n",
            "{tr}: {out:?}"
        );

        // An interactive shell on a terminal: prompt, size, resize, exit code.
        let steps = serde_json::json!([
            {"expect": "[#$] "},
            {"send": "stty size\n"},
            {"expect": "24 80"},
            {"resize": [33, 101]},
            {"sleep": 0.5},
            {"send": "stty size\n"},
            {"expect": "33 101"},
            // The container's own pty: `tty` names a node of its devpts, fd 0 points at it.
            {"send": "t=$(tty); [ \"$t\" = \"$(readlink /proc/self/fd/0)\" ] && [ -c \"$t\" ] && echo OWN\"\"TTY; tty; exit 5\n"},
        ]);
        let run = pty_drive(
            &steps,
            &cc.argv(&["exec", "-it", "--transport", tr, &id, "sh"]),
        )?;
        ensure!(
            run.error.is_none(),
            "{tr}: interactive exec: {:?}; output {:?}",
            run.error,
            run.output
        );
        ensure!(
            run.output.contains("/dev/pts/") && run.output.contains("OWNTTY"),
            "{tr}: no tty in the exec: {:?}",
            run.output
        );
        ensure!(
            run.exit_code == Some(5) || run.output.contains("exit code 5"),
            "{tr}: exit {:?} output {:?}",
            run.exit_code,
            run.output
        );
    }
    // Nothing of the sessions is left in the container.
    let ps = rpc::exec_ok(&mut c, &id, &["ps", "-o", "comm"]).await?;
    ensure!(
        !ps.contains("cat") && ps.matches("sh").count() <= 1,
        "leftover exec processes: {ps}"
    );
    drop(c);
    t.finish().await
}

stream_test!(crictl_attach, attach_body);
async fn attach_body(bin: std::path::PathBuf) -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "attach").await?;
    let ticker = t
        .spec("ticker")
        .sh("i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done");
    let tick = t.run(&mut c, &pod, &ticker).await?;
    let cc = Crictl::new(bin, &t.t.d.socket);
    for tr in TRANSPORTS {
        // Two attachers at once both see the output.
        let a = cc.spawn(&["attach", "--transport", tr, &tick])?;
        let b = cc.spawn(&["attach", "--transport", tr, &tick])?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for (n, mut child) in [a, b].into_iter().enumerate() {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            ensure!(
                text(&out.stdout).contains("tick-"),
                "{tr}: attacher {n} saw {:?} / {:?}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        // stdin_once: what the attacher types reaches the container, and its EOF ends it.
        let cat = t
            .spec(&format!("cat-{tr}"))
            .cmd(&["sh", "-c", "cat; echo bye"])
            .stdin(true);
        let id = t.run(&mut c, &pod, &cat).await?;
        let out = cc.run(
            &["attach", "-i", "--transport", tr, &id],
            b"typed line\n",
            Duration::from_secs(60),
        )?;
        ensure!(
            text(&out.stdout).contains("typed line"),
            "{tr}: attach -i stdout {:?} stderr {:?}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let st = rpc::wait_exited(&mut c, &id, Duration::from_secs(30)).await?;
        ensure!(st.exit_code == 0, "{tr}: cat exited {}", st.exit_code);
    }
    drop(c);
    t.finish().await
}

/// Starts busybox httpd on `port` serving /www/big (100 MiB of random bytes); returns the
/// container id and the file's sha256.
async fn http_server(
    t: &CtrTest,
    c: &mut rpc_rt::Runtime,
    pod: &berth_tests::containers::Pod,
    port: u16,
) -> Result<(String, String)> {
    let script = format!(
        "mkdir -p /www && dd if=/dev/urandom of=/www/big.tmp bs=1048576 count=100 2>/dev/null && mv /www/big.tmp /www/big; exec httpd -f -p {port} -h /www"
    );
    let id = t
        .run(c, pod, &t.spec(&format!("httpd-{port}")).sh(&script))
        .await?;
    let mut sum = String::new();
    for _ in 0..300 {
        if let Ok(out) = rpc::exec_ok(
            c,
            &id,
            &["sh", "-c", "test -f /www/big && sha256sum /www/big"],
        )
        .await
        {
            sum = out
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(sum.len() == 64, "the 100 MiB file was not written");
    Ok((id, sum))
}

mod rpc_rt {
    pub use berth_tests::pods::rpc::Runtime;
}

/// crictl port-forward to `remote` in `pod`; fetches /big through it and checks size and sum.
async fn forward_and_fetch(cc: &Crictl, tr: &str, pod: &str, remote: u16, sum: &str) -> Result<()> {
    let local = free_port()?;
    let mapping = format!("{local}:{remote}");
    let mut child = cc.spawn(&["port-forward", "--transport", tr, pod, &mapping])?;
    let addr = format!("127.0.0.1:{local}").parse()?;
    let mut last = None;
    let mut got = None;
    for _ in 0..100 {
        match tokio::task::spawn_blocking(move || {
            http_get_sha256(addr, "/big", Duration::from_secs(60))
        })
        .await?
        {
            Ok(v) => {
                got = Some(v);
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output()?;
    let (n, got_sum) = got.with_context(|| {
        format!(
            "{tr}: port-forward fetch failed: {last:?}; crictl stderr {:?}",
            text(&out.stderr)
        )
    })?;
    ensure!(
        n == 100 << 20 && got_sum == sum,
        "{tr}: fetched {n} bytes with sha256 {got_sum}, want {} and {sum}",
        100 << 20
    );
    Ok(())
}

stream_test!(crictl_port_forward_100mb, port_forward_body);
async fn port_forward_body(bin: std::path::PathBuf) -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "pf").await?;
    let (_id, sum) = http_server(&t, &mut c, &pod, 8080).await?;
    let cc = Crictl::new(bin, &t.t.d.socket);
    for tr in TRANSPORTS {
        forward_and_fetch(&cc, tr, &pod.id, 8080, &sum).await?;
    }
    drop(c);
    t.finish().await
}

stream_test!(crictl_port_forward_host_network, host_network_body);
async fn host_network_body(bin: std::path::PathBuf) -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t
        .pod_from(&mut c, PodSpec::new("pfhost", &t.t.net).host_network())
        .await?;
    let port = free_port()?;
    let (_id, sum) = http_server(&t, &mut c, &pod, port).await?;
    let cc = Crictl::new(bin, &t.t.d.socket);
    for tr in TRANSPORTS {
        forward_and_fetch(&cc, tr, &pod.id, port, &sum).await?;
    }
    drop(c);
    t.finish().await
}
