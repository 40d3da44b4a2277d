//! The seeds' Docker tutorial replayed against berthd with Debian's docker 20.10 CLI and
//! docker-compose 1.29, one step after the other as a person types them: run -d -p, -it,
//! exec -it, attach and detach, ps/rename/stop/start/rm -f/container prune, volumes shared
//! between containers, a user network with name resolution plus --net host/none/container:,
//! commit/save/rmi/load, export/import, tag/push/pull, history/inspect/logs -f/cp, the
//! errors dockerd users know, a three-service compose stack, and nothing left afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::docker::{CLI_20, busybox_env, http_get, leak_free, track_pod};
use berth_tests::docker_test;
use berth_tests::free_port;
use berth_tests::streaming::pty_drive;
use serde_json::json;

docker_test!(
    seeds_tutorial,
    seeds_tutorial_body,
    [CLI_20, "docker-compose", "python3"]
);

fn wait_for(what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f()? {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

async fn seeds_tutorial_body() -> Result<()> {
    let (reg, t, d, repo) = busybox_env(CLI_20).await?;
    let work = tempfile::tempdir()?;
    let path = |n: &str| work.path().join(n).display().to_string();

    // 1. docker run -d -p 818:80 --name web …: a web server on a published port.
    let port = free_port()?;
    d.ok(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:80"),
        "--name",
        "web",
        &repo,
        "sh",
        "-c",
        "mkdir -p /www && echo 'hello from web' > /www/index.html && exec httpd -f -p 80 -h /www",
    ])?;
    track_pod(&t, &d, "web")?;
    ensure!(
        http_get(port)?.contains("hello from web"),
        "web answers on {port}"
    );

    // 2. run -it, exec -it, attach and detach with ctrl-p ctrl-q.
    let run = pty_drive(
        &json!([{"expect": "# ", "timeout": 15}, {"send": "echo in-$((1+1))\r"},
                {"expect": "in-2", "timeout": 10}, {"send": "exit 3\r"}]),
        &d.command_line(&["run", "-it", "--rm", &repo, "sh"]),
    )?;
    ensure!(run.exit_code == Some(3), "run -it: {run:?}");
    let run = pty_drive(
        &json!([{"expect": "# ", "timeout": 15}, {"send": "cat /www/index.html\r"},
                {"expect": "hello from web", "timeout": 10}, {"send": "exit\r"}]),
        &d.command_line(&["exec", "-it", "web", "sh"]),
    )?;
    ensure!(run.exit_code == Some(0), "exec -it: {run:?}");
    d.ok(&["run", "-dit", "--name", "shell", &repo, "sh"])?;
    track_pod(&t, &d, "shell")?;
    let run = pty_drive(
        &json!([{"send": "\r"}, {"expect": "# ", "timeout": 15}, {"send": "\u{10}\u{11}"}]),
        &d.command_line(&["attach", "shell"]),
    )?;
    ensure!(
        run.output.contains("read escape sequence"),
        "attach + detach: {run:?}"
    );
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "shell"])?;
    ensure!(
        st.trim() == "running",
        "still running after detaching: {st:?}"
    );

    // 3. ps -a, rename, stop, start, rm -f, container prune.
    d.ok(&["rename", "shell", "console"])?;
    d.ok(&["stop", "-t", "1", "console"])?;
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])?;
    ensure!(
        ps.lines().any(|l| l == "console exited") && ps.lines().any(|l| l == "web running"),
        "ps -a: {ps:?}"
    );
    d.ok(&["start", "console"])?;
    d.ok(&["rm", "-f", "console"])?;
    d.ok(&["run", "--name", "once", &repo, "true"])?;
    track_pod(&t, &d, "once")?;
    let pruned = d.ok(&["container", "prune", "-f"])?;
    ensure!(
        pruned.contains("Deleted Containers"),
        "container prune: {pruned:?}"
    );
    ensure!(
        d.output(&["inspect", "once"])?.status.code() == Some(1),
        "once was pruned"
    );

    // 4. Volumes: create, ls, data shared between two containers, prune.
    d.ok(&["volume", "create", "notes"])?;
    ensure!(
        d.ok(&["volume", "ls", "-q"])?.lines().any(|l| l == "notes"),
        "volume ls"
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "notes:/notes",
        &repo,
        "sh",
        "-c",
        "echo shared-note > /notes/n",
    ])?;
    let got = d.ok(&[
        "run",
        "--rm",
        "-v",
        "notes:/notes:ro",
        &repo,
        "cat",
        "/notes/n",
    ])?;
    ensure!(
        got == "shared-note\n",
        "volume shared between containers: {got:?}"
    );
    d.ok(&["volume", "create", "unused"])?;
    let pr = d.ok(&["volume", "prune", "-f"])?;
    ensure!(
        pr.contains("notes") && pr.contains("unused"),
        "volume prune: {pr:?}"
    );

    // 5. Networks: a user network with name resolution; host, none and container: modes.
    d.ok(&["network", "create", "tutnet"])?;
    d.ok(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "tutnet",
        "--network-alias",
        "backend",
        &repo,
        "sh",
        "-c",
        "mkdir -p /w && echo api-here > /w/index.html && exec httpd -f -p 8080 -h /w",
    ])?;
    track_pod(&t, &d, "api")?;
    for name in ["api", "backend"] {
        let url = format!("http://{name}:8080/");
        let mut got = String::new();
        wait_for(&format!("{url} from a second container"), || {
            let o = d.output(&[
                "run",
                "--rm",
                "--network",
                "tutnet",
                &repo,
                "wget",
                "-q",
                "-O",
                "-",
                &url,
            ])?;
            got = String::from_utf8_lossy(&o.stdout).into_owned();
            Ok(got == "api-here\n")
        })?;
    }
    let o = d.output(&["run", "--rm", &repo, "nslookup", "api"])?;
    ensure!(
        !o.status.success(),
        "the default bridge resolves no container names"
    );
    let host_if = d.ok(&["run", "--rm", "--net", "host", &repo, "ip", "-o", "link"])?;
    ensure!(
        host_if.lines().count() > 1,
        "--net host sees the node's links: {host_if:?}"
    );
    let none_if = d.ok(&["run", "--rm", "--net", "none", &repo, "ip", "-o", "link"])?;
    ensure!(
        none_if.lines().count() == 1 && none_if.contains("lo"),
        "--net none: {none_if:?}"
    );
    let api_ip = d.ok(&["exec", "api", "hostname", "-i"])?;
    let shared_ip = d.ok(&[
        "run",
        "--rm",
        "--net",
        "container:api",
        &repo,
        "hostname",
        "-i",
    ])?;
    ensure!(
        api_ip == shared_ip,
        "--net container:api shares api's address: {api_ip:?} {shared_ip:?}"
    );

    // 6. commit, save, rmi, load, run the loaded image.
    d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo committed > /www/extra.html",
    ])?;
    d.ok(&[
        "commit",
        "--change",
        "CMD [\"cat\", \"/www/extra.html\"]",
        "web",
        "my_web:1.0",
    ])?;
    let tar = path("my_web.tar");
    d.ok(&["save", "-o", &tar, "my_web:1.0"])?;
    d.ok(&["rmi", "my_web:1.0"])?;
    let loaded = d.ok(&["load", "-i", &tar])?;
    ensure!(
        loaded.contains("Loaded image: my_web:1.0"),
        "load: {loaded:?}"
    );
    let got = d.ok(&["run", "--rm", "my_web:1.0"])?;
    ensure!(got == "committed\n", "the loaded image runs: {got:?}");

    // 7. export and import.
    let fs = path("web-fs.tar");
    d.ok(&["export", "-o", &fs, "web"])?;
    d.ok(&["import", &fs, "web_fs:1"])?;
    let got = d.ok(&["run", "--rm", "web_fs:1", "cat", "/www/index.html"])?;
    ensure!(got == "hello from web\n", "imported rootfs: {got:?}");

    // 8. tag and push to the local registry, then pull it back.
    let pushed = format!("{}/tutorial/my_web:1.0", reg.host);
    d.ok(&["tag", "my_web:1.0", &pushed])?;
    d.ok(&["push", &pushed])?;
    d.ok(&["rmi", &pushed, "my_web:1.0"])?;
    d.ok(&["pull", &pushed])?;
    let got = d.ok(&["run", "--rm", &pushed])?;
    ensure!(got == "committed\n", "pulled back: {got:?}");

    // 9. history, inspect, logs -f, cp both ways.
    let hist = d.ok(&["history", &pushed])?;
    ensure!(hist.lines().count() >= 3, "history: {hist:?}");
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])?;
    ensure!(
        ip.trim().parse::<std::net::Ipv4Addr>().is_ok(),
        "inspect IP: {ip:?}"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        &repo,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line-$i; sleep 0.2; done",
    ])?;
    track_pod(&t, &d, "talker")?;
    let logs = d.ok(&["logs", "-f", "talker"])?;
    ensure!(
        logs == "line-1\nline-2\nline-3\n",
        "logs -f follows to the end: {logs:?}"
    );
    let page = path("page.html");
    std::fs::write(&page, "copied in\n")?;
    d.ok(&["cp", &page, "web:/www/page.html"])?;
    ensure!(
        http_get_path(port, "/page.html")?.contains("copied in"),
        "cp into web"
    );
    let back = path("index.html");
    d.ok(&["cp", "web:/www/index.html", &back])?;
    ensure!(
        std::fs::read_to_string(&back)? == "hello from web\n",
        "cp out of web"
    );

    // 10. The errors dockerd's users know.
    let e = d
        .fails(&["run", "-d", &format!("{}/nothere", reg.host)])
        .or_else(|_| {
            // `run` exits 125 for daemon errors.
            let o = d.output(&["run", "-d", &format!("{}/nothere", reg.host)])?;
            Ok::<_, anyhow::Error>(String::from_utf8_lossy(&o.stderr).into_owned())
        })?;
    ensure!(
        e.contains("not found") || e.contains("manifest unknown"),
        "unknown image: {e:?}"
    );
    let o = d.output(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:80"),
        &repo,
        "sleep",
        "1",
    ])?;
    let e = String::from_utf8_lossy(&o.stderr);
    ensure!(
        !o.status.success() && e.contains(&port.to_string()),
        "port already published: {e:?}"
    );
    let o = d.output(&["run", "-d", "--name", "web", &repo, "true"])?;
    let e = String::from_utf8_lossy(&o.stderr);
    ensure!(e.contains("is already in use"), "name in use: {e:?}");
    let e = d.fails(&["rm", "web"])?;
    ensure!(
        e.contains("You cannot remove a running container"),
        "rm running: {e:?}"
    );

    // 11. A three-service compose stack: up -d, ps, logs, down -v.
    let compose_dir = berth_tests::workspace_root().join("tests/fixtures/docker/compose");
    let web_port = free_port()?;
    let compose = |args: &[&str]| -> Result<std::process::Output> {
        std::process::Command::new("docker-compose")
            .args(["-p", "tut", "-f"])
            .arg(compose_dir.join("docker-compose.yml"))
            .args(args)
            .env("DOCKER_HOST", &d.host)
            .env("REPO", &repo)
            .env("WEB_PORT", web_port.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .context("docker-compose")
    };
    let up = compose(&["up", "-d"])?;
    ensure!(
        up.status.success(),
        "compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    for svc in ["db", "app", "web"] {
        track_pod(&t, &d, &format!("tut_{svc}_1"))?;
    }
    let ps = compose(&["ps"])?;
    let ps_text = String::from_utf8_lossy(&ps.stdout);
    ensure!(
        ["tut_db_1", "tut_app_1", "tut_web_1"]
            .iter()
            .all(|n| ps_text.contains(n)),
        "compose ps: {ps_text}"
    );
    wait_for("the app to fetch from db by name", || {
        let logs = compose(&["logs", "app"])?;
        Ok(String::from_utf8_lossy(&logs.stdout).contains("got-db"))
    })?;
    ensure!(
        http_get(web_port)?.contains("rows"),
        "web serves what app fetched from db"
    );
    let down = compose(&["down", "-v"])?;
    ensure!(
        down.status.success(),
        "compose down -v: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    ensure!(
        !d.ok(&["volume", "ls", "-q"])?.contains("tut_"),
        "down -v removed the volumes"
    );
    ensure!(
        !d.ok(&["network", "ls"])?.contains("tut_default"),
        "down removed the network"
    );

    // 12. Nothing is left after rm -f of everything and system prune -af --volumes.
    let all = d.ok(&["ps", "-aq"])?;
    let ids: Vec<&str> = all.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        d.ok(&args)?;
    }
    d.ok(&["network", "rm", "tutnet"])?;
    let out = d.ok(&["system", "prune", "-af", "--volumes"])?;
    ensure!(
        out.contains("Total reclaimed space"),
        "system prune: {out:?}"
    );
    ensure!(d.ok(&["images", "-q"])?.trim().is_empty(), "images left");
    ensure!(
        d.ok(&["volume", "ls", "-q"])?.trim().is_empty(),
        "volumes left"
    );
    leak_free(t).await
}

/// GET `path` on 127.0.0.1:port.
fn http_get_path(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
