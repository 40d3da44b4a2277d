//! berthd's Docker API, container endpoints (create, start, stop, rm, ps, inspect, logs),
//! driven by real clients against a real berthd and the local test registry: the docker
//! CLI 28, Debian's docker 20.10 CLI and the Python SDK. Runs here are detached; `docker run`
//! without `-d` (attach), exec and attach are in docker_streams.rs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::docker::{
    CLI_20, Docker, busybox_env, http_get, leak_free, python_sdk_present, run_sdk_script,
    track_pod, unix_host,
};
use berth_tests::docker_runs::wait_exited;
use berth_tests::pods::PodTest;
use berth_tests::{Registry, TestImage, cri, free_port, images};
use berth_tests::{docker_cli_tests, docker_test};

/// `docker run` that must fail: the CLI exits 125 for the daemon's errors there.
fn run_fails(docker: &Docker, args: &[&str]) -> Result<String> {
    let out = docker.output(args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.code() == Some(125),
        "{args:?}: expected exit code 125, got {} (stderr {stderr:?})",
        out.status
    );
    Ok(stderr)
}

docker_cli_tests!(walkthrough, cli_28_containers, cli_20_containers);

/// run -d -p with a bind mount, ps, ps -a, filters, inspect, logs, stop, rm, rm -f and the
/// errors, as a person types them.
async fn walkthrough(bin: &str) -> Result<()> {
    let (reg, t, docker, repo) = busybox_env(bin).await?;
    let port = free_port()?;
    let www = tempfile::tempdir()?;
    std::fs::write(www.path().join("index.html"), "hello from berth\n")?;

    // The image is not there yet: create answers 404, the CLI pulls and creates again.
    let bind = format!("{}:/www:ro", www.path().display());
    let id = docker.ok(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:80"),
        "--name",
        "web",
        "-l",
        "app=web",
        "-v",
        &bind,
        "-e",
        "WHO=berth",
        &repo,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])?;
    let id = id.lines().last().unwrap_or_default().trim().to_string();
    ensure!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d printed {id:?}"
    );
    track_pod(&t, &docker, "web")?;
    let page = http_get(port)?;
    ensure!(page.contains("hello from berth"), "GET /: {page:?}");
    shown_to_crictl(&t, &id).await?;

    let ps = docker.ok(&[
        "ps",
        "--format",
        "{{.ID}} {{.Names}} {{.Image}} {{.Status}} {{.Ports}}",
    ])?;
    ensure!(
        ps.trim()
            .starts_with(&format!("{} web {repo} Up ", &id[..12]))
            && ps.contains(&format!("0.0.0.0:{port}->80/tcp")),
        "ps: {ps:?}"
    );

    // One that prints and exits.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        &repo,
        "sh",
        "-c",
        "echo one; echo two; echo err >&2; sleep 0.3; echo three",
    ])?;
    track_pod(&t, &docker, "talk")?;
    wait_exited(&docker, "talk")?;
    let ps = docker.ok(&["ps", "--format", "{{.Names}}"])?;
    ensure!(ps.trim() == "web", "ps shows only running ones: {ps:?}");
    let all = docker.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])?;
    ensure!(
        all.lines().any(|l| l.starts_with("talk Exited (0) ")) && all.contains("web Up"),
        "ps -a: {all:?}"
    );
    let info = docker.ok(&[
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}}",
    ])?;
    ensure!(info.trim() == "2 1 1", "info counts: {info:?}");
    let f = docker.ok(&["ps", "-a", "--filter", "name=web", "--format", "{{.Names}}"])?;
    ensure!(f.trim() == "web", "filter name: {f:?}");
    let f = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=^/ta",
        "--format",
        "{{.Names}}",
    ])?;
    ensure!(
        f.trim() == "talk",
        "filter name as a regular expression: {f:?}"
    );
    let f = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
    ])?;
    ensure!(f.trim() == "talk", "filter status: {f:?}");
    let f = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "label=app=web",
        "--format",
        "{{.Names}}",
    ])?;
    ensure!(f.trim() == "web", "filter label: {f:?}");
    let f = docker.ok(&["ps", "-aq", "--filter", &format!("id={}", &id[..10])])?;
    ensure!(f.trim() == &id[..12], "filter id: {f:?}");

    let i = docker.ok(&[
        "inspect", "-f",
        "{{.Id}} {{.Name}} {{.State.Status}} {{.State.Running}} {{.Config.Image}} {{.HostConfig.NetworkMode}} {{index .Config.Labels \"app\"}} {{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
        "web",
    ])?;
    ensure!(
        i.trim() == format!("{id} /web running true {repo} default web {port}"),
        "inspect: {i:?}"
    );
    let env = docker.ok(&["inspect", "-f", "{{json .Config.Env}}", &id[..8]])?;
    ensure!(env.contains("WHO=berth"), "inspect env: {env:?}");
    let ip = docker.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}} {{.State.Pid}}",
        "web",
    ])?;
    let mut parts = ip.split_whitespace();
    ensure!(
        parts
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
            && parts
                .next()
                .is_some_and(|p| p.parse::<u32>().is_ok_and(|p| p > 0)),
        "inspect ip, pid: {ip:?}"
    );

    let out = docker.output(&["logs", "talk"])?;
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    ensure!(
        so == "one\ntwo\nthree\n" && se == "err\n",
        "logs: {so:?} / {se:?}"
    );
    let tail = docker.ok(&["logs", "--tail", "1", "talk"])?;
    ensure!(tail == "three\n", "logs --tail 1: {tail:?}");
    let ts = docker.ok(&["logs", "-t", "--tail", "2", "talk"])?;
    ensure!(
        ts.lines().count() == 1 && ts.contains("Z three"),
        "logs -t: {ts:?}"
    );

    // logs -f streams until the container exits.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        &repo,
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.3; done",
    ])?;
    track_pod(&t, &docker, "counter")?;
    let followed = docker.ok(&["logs", "-f", "counter"])?;
    ensure!(followed == "1\n2\n3\n", "logs -f: {followed:?}");
    docker.ok(&["rm", "counter"])?;

    // Errors, worded as dockerd words them.
    let e = run_fails(&docker, &["run", "-d", "--name", "web", &repo, "true"])?;
    ensure!(
        e.contains("Conflict. The container name \"/web\" is already in use by container"),
        "name conflict: {e:?}"
    );
    let e = run_fails(&docker, &["run", "-d", &format!("{}/nosuch", reg.host)])?;
    ensure!(e.contains("nosuch"), "unknown image: {e:?}");
    let out = docker.output(&["run", "-d", "--name", "badcmd", &repo, "nosuchcmd"])?;
    ensure!(
        out.status.code() == Some(127)
            && String::from_utf8_lossy(&out.stderr).contains("executable file not found"),
        "a program that does not exist: {out:?}"
    );
    track_pod(&t, &docker, "badcmd")?;
    docker.ok(&["rm", "badcmd"])?;
    let e = docker.fails(&["rm", "web"])?;
    ensure!(
        e.contains(&format!("You cannot remove a running container {id}")),
        "rm running: {e:?}"
    );
    let e = docker.fails(&["inspect", "nosuchcontainer"])?;
    ensure!(e.contains("No such"), "inspect unknown: {e:?}");

    let out = docker.ok(&["stop", "-t", "1", "web"])?;
    ensure!(out.trim() == "web", "stop: {out:?}");
    let st = docker.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}}",
        "web",
    ])?;
    ensure!(st.trim() == "exited false", "after stop: {st:?}");
    docker.ok(&["rm", "web", "talk"])?;

    docker.ok(&["run", "-d", "--name", "forced", &repo, "sleep", "300"])?;
    track_pod(&t, &docker, "forced")?;
    let out = docker.ok(&["rm", "-f", "forced"])?;
    ensure!(out.trim() == "forced", "rm -f: {out:?}");

    more_modes(&t, &docker, &repo, www.path()).await?;

    let left = docker.ok(&["ps", "-aq"])?;
    ensure!(left.trim().is_empty(), "containers left: {left:?}");
    let logs_left: Vec<_> = std::fs::read_dir(t.d.root_dir.join("docker/logs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ensure!(logs_left.is_empty(), "log dirs left: {logs_left:?}");
    leak_free(t).await
}

/// The pod and the container are the CRI's too, labelled as the Docker API's.
async fn shown_to_crictl(t: &PodTest, id: &str) -> Result<()> {
    let mut rt = t.d.runtime().await?;
    let pods = rt
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await?
        .into_inner()
        .items;
    let docker = |l: &std::collections::HashMap<String, String>| {
        l.get("io.berth.api").map(String::as_str) == Some("docker")
    };
    ensure!(
        pods.iter().any(|p| docker(&p.labels)
            && p.metadata
                .as_ref()
                .is_some_and(|m| m.name == "web" && m.namespace == "docker")),
        "no pod web in namespace docker labelled io.berth.api=docker: {pods:?}"
    );
    let cs = rt
        .list_containers(cri::ListContainersRequest::default())
        .await?
        .into_inner()
        .containers;
    ensure!(
        cs.iter().any(|c| c.id == id
            && docker(&c.labels)
            && c.labels.get("app").map(String::as_str) == Some("web")),
        "container {id} not listed by the CRI with its labels: {cs:?}"
    );
    Ok(())
}

/// create + start with a generated name, --rm, -P, --net host and --net none.
async fn more_modes(t: &PodTest, docker: &Docker, repo: &str, www: &std::path::Path) -> Result<()> {
    let id = docker.ok(&["create", repo, "sh", "-c", "exit 3"])?;
    let id = id.trim();
    let name = docker.ok(&["inspect", "-f", "{{.Name}}", id])?;
    let name = name.trim().trim_start_matches('/').to_string();
    ensure!(
        name.split_once('_')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()),
        "generated name: {name:?}"
    );
    let st = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=created",
        "--format",
        "{{.Names}} {{.Status}}",
    ])?;
    ensure!(st.trim() == format!("{name} Created"), "created: {st:?}");
    track_pod(t, docker, id)?;
    docker.ok(&["start", id])?;
    wait_exited(docker, id)?;
    let code = docker.ok(&["inspect", "-f", "{{.State.ExitCode}}", id])?;
    ensure!(code.trim() == "3", "exit code: {code:?}");
    docker.ok(&["rm", id])?;

    // --rm: gone once it exits.
    docker.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "brief",
        repo,
        "sh",
        "-c",
        "sleep 0.5",
    ])?;
    track_pod(t, docker, "brief")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !docker
        .ok(&["ps", "-aq", "--filter", "name=brief"])?
        .trim()
        .is_empty()
    {
        ensure!(Instant::now() < deadline, "--rm container still there");
        std::thread::sleep(Duration::from_millis(100));
    }

    // -P publishes what --expose (or the image) exposes on a free port.
    let bind = format!("{}:/www:ro", www.display());
    docker.ok(&[
        "run", "-d", "-P", "--expose", "80", "--name", "pub", "-v", &bind, repo, "busybox",
        "httpd", "-f", "-p", "80", "-h", "/www",
    ])?;
    track_pod(t, docker, "pub")?;
    let p = docker.ok(&["port", "pub", "80"])?;
    let host_port: u16 = p
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("docker port pub 80: {p:?}"))?;
    ensure!(
        http_get(host_port)?.contains("hello from berth"),
        "-P port {host_port}"
    );
    docker.ok(&["rm", "-f", "pub"])?;

    // --net none: loopback only; --net host: the node's interfaces.
    docker.ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "lonely",
        repo,
        "sh",
        "-c",
        "ip -o link | wc -l",
    ])?;
    track_pod(t, docker, "lonely")?;
    wait_exited(docker, "lonely")?;
    let n = docker.ok(&["logs", "lonely"])?;
    ensure!(n.trim() == "1", "--net none links: {n:?}");
    docker.ok(&[
        "run",
        "-d",
        "--net",
        "host",
        "--name",
        "hosted",
        repo,
        "sh",
        "-c",
        "ip -o link | wc -l",
    ])?;
    track_pod(t, docker, "hosted")?;
    wait_exited(docker, "hosted")?;
    let n = docker.ok(&["logs", "hosted"])?;
    ensure!(
        n.trim().parse::<u32>().is_ok_and(|n| n > 1),
        "--net host links: {n:?}"
    );
    let m = docker.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "hosted"])?;
    ensure!(m.trim() == "host", "network mode: {m:?}");
    docker.ok(&["rm", "lonely", "hosted"])?;

    // With a tty the log is the terminal's output, sent raw (no stream framing). The CRI
    // log file keeps lines without the terminal's `\r` (dockerd's json-file keeps it).
    docker.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "tty",
        repo,
        "sh",
        "-c",
        "echo tty-line",
    ])?;
    track_pod(t, docker, "tty")?;
    wait_exited(docker, "tty")?;
    let out = docker.ok(&["logs", "tty"])?;
    ensure!(out == "tty-line\n", "logs of a tty: {out:?}");
    let tty = docker.ok(&["inspect", "-f", "{{.Config.Tty}}", "tty"])?;
    ensure!(tty.trim() == "true", "Config.Tty: {tty:?}");
    docker.ok(&["rm", "tty"])?;

    // Limits, working dir, user and env reach the process.
    docker.ok(&[
        "run", "-d", "--name", "limited", "--pids-limit", "50", "--memory", "64m", "--cpus",
        "0.5", "-w", "/tmp", "-u", "1000:1000", "-e", "A=b", repo, "sh", "-c",
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us; pwd; id -u; echo $A",
    ])?;
    track_pod(t, docker, "limited")?;
    wait_exited(docker, "limited")?;
    let out = docker.output(&["logs", "limited"])?;
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    ensure!(
        so == "50\n67108864\n50000\n/tmp\n1000\nb\n",
        "limits, cwd, user, env: {so:?} / {se:?}"
    );
    docker.ok(&["rm", "limited"])?;
    Ok(())
}

docker_test!(
    python_sdk_containers,
    python_sdk_containers_body,
    ["python3"]
);
async fn python_sdk_containers_body() -> Result<()> {
    if !python_sdk_present()? {
        println!(
            "SKIP python_sdk_containers: PyPI docker 7.x missing (run scripts/install-deps.sh)"
        );
        return Ok(());
    }
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let repo = format!("{}/busybox", reg.host);
    let port = free_port()?;
    let v = run_sdk_script(
        "sdk_containers.py",
        &[&unix_host(&t.d), &repo, &port.to_string()],
    )
    .context("sdk_containers.py")?;
    for key in ["pod", "force_pod"] {
        if let Some(p) = v[key].as_str() {
            t.track(p);
        }
    }
    let want = serde_json::json!({
        "id_len": 64,
        "status": "running",
        "name": "sdkweb",
        "env_has_greeting": true,
        "listed": ["sdkweb"],
        "logs": "hello-sdk\n",
        "conflict": 409,
        "status_after_stop": "exited",
        "gone": true,
        "left": [],
    });
    for (k, w) in want.as_object().into_iter().flatten() {
        ensure!(&v[k] == w, "{k}: got {}, want {w} (all: {v})", v[k]);
    }
    ensure!(
        v["ports"]["80/tcp"][0]["HostPort"] == serde_json::json!(port.to_string()),
        "ports: {}",
        v["ports"]
    );
    leak_free(t).await
}

docker_test!(survives_restart, survives_restart_body, [CLI_20]);
/// A Docker container keeps running while berthd restarts, and is still known afterwards.
async fn survives_restart_body() -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let mut t = PodTest::start().await?;
    let docker = Docker::new(CLI_20, unix_host(&t.d))?;
    let repo = format!("{}/busybox", reg.host);
    let port = free_port()?;
    let www = tempfile::tempdir()?;
    std::fs::write(www.path().join("index.html"), "still here\n")?;
    let bind = format!("{}:/www:ro", www.path().display());
    docker.ok(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:80"),
        "--name",
        "keep",
        "-v",
        &bind,
        &repo,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])?;
    track_pod(&t, &docker, "keep")?;
    ensure!(http_get(port)?.contains("still here"), "before the restart");
    let pid = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "keep"])?;

    t.d.restart().await?;
    let docker = Docker::new(CLI_20, unix_host(&t.d))?;
    let ps = docker.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"])?;
    ensure!(
        ps.trim() == format!("keep 0.0.0.0:{port}->80/tcp"),
        "ps after the restart: {ps:?}"
    );
    let pid_after = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "keep"])?;
    ensure!(
        pid == pid_after,
        "the process changed: {pid:?} → {pid_after:?}"
    );
    ensure!(http_get(port)?.contains("still here"), "after the restart");
    docker.ok(&["rm", "-f", "keep"])?;
    leak_free(t).await
}

docker_cli_tests!(control, cli_28_control, cli_20_control);

/// pause/unpause, kill -s, rename, restart, stop then start again (the writable layer
/// kept), wait, and a restart policy, as a person types them.
async fn control(bin: &str) -> Result<()> {
    let (_reg, t, docker, repo) = busybox_env(bin).await?;
    let inspect = |name: &str, fmt: &str| -> Result<String> {
        Ok(docker.ok(&["inspect", "-f", fmt, name])?.trim().to_string())
    };

    // A shell that counts its runs in its writable layer, reports USR1 in its log and
    // otherwise sleeps.
    let script = "echo run >> /runs; echo runs=$(wc -l < /runs); \
                  trap 'echo got-usr1' USR1; while true; do sleep 0.2; done";
    docker.ok(&["run", "-d", "--name", "ctl", &repo, "sh", "-c", script])?;
    track_pod(&t, &docker, "ctl")?;

    docker.ok(&["pause", "ctl"])?;
    ensure!(
        inspect("ctl", "{{.State.Status}}")? == "paused",
        "not paused"
    );
    let ps = docker.ok(&["ps", "--format", "{{.Names}} {{.Status}}"])?;
    ensure!(ps.contains("(Paused)"), "ps while paused: {ps:?}");
    let err = docker.fails(&["pause", "ctl"])?;
    ensure!(err.contains("already paused"), "second pause: {err:?}");
    docker.ok(&["unpause", "ctl"])?;
    ensure!(
        inspect("ctl", "{{.State.Status}}")? == "running",
        "not running"
    );

    docker.ok(&["kill", "-s", "USR1", "ctl"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !docker.ok(&["logs", "ctl"])?.contains("got-usr1") {
        ensure!(Instant::now() < deadline, "USR1 never reached the shell");
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = docker.fails(&["kill", "-s", "NOPE", "ctl"])?;
    ensure!(err.contains("Invalid signal"), "bad signal: {err:?}");

    docker.ok(&["rename", "ctl", "ctl2"])?;
    ensure!(inspect("ctl2", "{{.Name}}")? == "/ctl2", "rename");
    docker.fails(&["inspect", "ctl"])?;

    // The writable layer and the log survive restart, stop and start; the id stays.
    let id = inspect("ctl2", "{{.Id}}")?;
    let started = inspect("ctl2", "{{.State.StartedAt}}")?;
    docker.ok(&["restart", "-t", "1", "ctl2"])?;
    ensure!(
        inspect("ctl2", "{{.State.Running}}")? == "true",
        "after restart"
    );
    ensure!(
        inspect("ctl2", "{{.State.StartedAt}}")? != started,
        "restart did not start it again"
    );
    docker.ok(&["stop", "-t", "1", "ctl2"])?;
    ensure!(
        inspect("ctl2", "{{.State.Status}}")? == "exited",
        "after stop"
    );
    docker.ok(&["start", "ctl2"])?;
    ensure!(
        inspect("ctl2", "{{.State.Running}}")? == "true",
        "after start"
    );
    ensure!(inspect("ctl2", "{{.Id}}")? == id, "the id changed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !docker.ok(&["logs", "ctl2"])?.contains("runs=3") {
        let logs = docker.ok(&["logs", "ctl2"])?;
        ensure!(
            Instant::now() < deadline,
            "three runs on one writable layer: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    docker.ok(&["kill", "ctl2"])?;
    let code = docker.ok(&["wait", "ctl2"])?;
    ensure!(code.trim() == "137", "wait after kill: {code:?}");

    // wait answers the exit code; on-failure:2 runs it three times in all.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &repo,
        "sh",
        "-c",
        "exit 3",
    ])?;
    track_pod(&t, &docker, "flaky")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (count, status) = (
            inspect("flaky", "{{.RestartCount}}")?,
            inspect("flaky", "{{.State.Status}}")?,
        );
        if count == "2" && status == "exited" {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "on-failure:2: restarts {count}, status {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let code = docker.ok(&["wait", "flaky"])?;
    ensure!(code.trim() == "3", "wait: {code:?}");
    let err = run_fails(
        &docker,
        &["run", "-d", "--rm", "--restart", "always", &repo, "true"],
    )?;
    ensure!(
        err.contains("--restart and --rm"),
        "--rm with --restart: {err:?}"
    );

    docker.ok(&["rm", "-f", "ctl2", "flaky"])?;
    leak_free(t).await
}

docker_test!(
    testcontainers_python,
    testcontainers_python_body,
    ["python3"]
);
/// testcontainers (its reaper off) runs, waits for, execs in and reaches a container; the
/// SDK reads its stats and top, copies files in and out, and replays its events.
async fn testcontainers_python_body() -> Result<()> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import testcontainers"])
        .stderr(std::process::Stdio::null())
        .status()?;
    if !probe.success() || !python_sdk_present()? {
        println!(
            "SKIP testcontainers_python: PyPI testcontainers or docker missing (run scripts/install-deps.sh)"
        );
        return Ok(());
    }
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let image = format!("{}/busybox:latest", reg.host);
    let v = run_sdk_script("testcontainers_walk.py", &[&unix_host(&t.d), &image])
        .context("testcontainers_walk.py")?;
    if let Some(p) = v["pod"].as_str() {
        t.track(p);
    }
    let want = serde_json::json!({
        "http": "served\n",
        "exec": [0, "yes\n"],
        "stats_has_memory": true,
        "stats_has_precpu": true,
        "top_has_httpd": true,
        "put_archive": true,
        "get_archive": "put by the sdk\n",
        "stat_name": "sdk.txt",
        "events": ["create", "start", "die", "destroy"],
        "left": [],
    });
    for (k, w) in want.as_object().into_iter().flatten() {
        ensure!(&v[k] == w, "{k}: got {}, want {w} (all: {v})", v[k]);
    }
    leak_free(t).await
}
