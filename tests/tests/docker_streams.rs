//! berthd's Docker API, hijacked streams: `docker run` without -d (attach before start,
//! wait, the exit code), `docker run -i` with piped stdin, `docker exec` (output, exit
//! code, -i, -it through a pseudo-terminal), `docker attach` and its detach keys, and the
//! Python SDK's `exec_run` and `containers.run(detach=False)`; both CLIs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::docker::{
    busybox_env, leak_free, python_sdk_present, run_sdk_script, track_pod, unix_host,
};
use berth_tests::pods::PodTest;
use berth_tests::streaming::pty_drive;
use berth_tests::{Registry, TestImage, images};
use berth_tests::{docker_cli_tests, docker_test};
use serde_json::json;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

docker_cli_tests!(streams, cli_28_streams, cli_20_streams);

async fn streams(bin: &str) -> Result<()> {
    let (_reg, t, docker, repo) = busybox_env(bin).await?;
    docker.ok(&["pull", &repo])?;

    // run without -d: the output, then the exit code; --rm removes it.
    let out = docker.output(&["run", "--rm", &repo, "echo", "hi"])?;
    ensure!(
        out.status.code() == Some(0) && text(&out.stdout) == "hi\n",
        "run --rm echo: {out:?}"
    );
    let out = docker.output(&[
        "run",
        "--name",
        "three",
        &repo,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])?;
    ensure!(out.status.code() == Some(3), "run exit 3: {out:?}");
    ensure!(text(&out.stdout) == "out\n", "stdout: {out:?}");
    ensure!(text(&out.stderr).contains("err\n"), "stderr: {out:?}");
    track_pod(&t, &docker, "three")?;
    // start -a: attached again, the same output and exit code.
    let out = docker.output(&["start", "-a", "three"])?;
    ensure!(
        out.status.code() == Some(3) && text(&out.stdout) == "out\n",
        "start -a: {out:?}"
    );
    docker.ok(&["rm", "three"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !docker.ok(&["ps", "-aq"])?.trim().is_empty() {
        ensure!(Instant::now() < deadline, "--rm left a container");
        std::thread::sleep(Duration::from_millis(100));
    }

    // run -i with piped stdin.
    let out = docker.output_stdin(&["run", "--rm", "-i", &repo, "cat"], b"piped in\n")?;
    ensure!(
        out.status.code() == Some(0) && text(&out.stdout) == "piped in\n",
        "run -i cat: {out:?}"
    );

    // exec into a running container.
    docker.ok(&["run", "-d", "--name", "box", &repo, "sleep", "300"])?;
    track_pod(&t, &docker, "box")?;
    ensure!(
        docker.ok(&["exec", "box", "echo", "hi"])? == "hi\n",
        "exec echo"
    );
    let out = docker.output(&["exec", "box", "sh", "-c", "exit 5"])?;
    ensure!(out.status.code() == Some(5), "exec exit 5: {out:?}");
    let out = docker.output_stdin(&["exec", "-i", "box", "cat"], b"to exec\n")?;
    ensure!(text(&out.stdout) == "to exec\n", "exec -i cat: {out:?}");
    let out = docker.ok(&[
        "exec",
        "-e",
        "GREETING=hey",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $GREETING $(pwd)",
    ])?;
    ensure!(out == "hey /tmp\n", "exec -e -w: {out:?}");
    let out = docker.ok(&["exec", "-u", "nobody", "box", "id", "-u"])?;
    ensure!(out == "65534\n", "exec -u nobody: {out:?}");
    let ids = [
        "exec",
        "-u",
        "1000:1001",
        "box",
        "sh",
        "-c",
        "echo $(id -u) $(id -g)",
    ];
    let out = docker.ok(&ids)?;
    ensure!(out == "1000 1001\n", "exec -u 1000:1001: {out:?}");

    // exec -d: started, not waited for.
    docker.ok(&["exec", "-d", "box", "sh", "-c", "echo done > /tmp/flag"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while docker.output(&["exec", "box", "cat", "/tmp/flag"])?.stdout != b"done\n" {
        ensure!(Instant::now() < deadline, "exec -d did not run");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A program that is not there: the CLI exits 127, as with dockerd.
    let out = docker.output(&["exec", "box", "nosuch"])?;
    ensure!(out.status.code() == Some(127), "exec nosuch: {out:?}");
    ensure!(
        text(&out.stdout).contains("executable file not found"),
        "exec nosuch: {out:?}"
    );

    // exec -it through a pseudo-terminal: a shell's prompt, its echo, its exit code.
    let run = pty_drive(
        &json!([
            {"expect": "# ", "timeout": 15},
            {"send": "echo tty-$((40+2))\r"},
            {"expect": "tty-42", "timeout": 10},
            {"send": "exit 7\r"},
        ]),
        &docker.command_line(&["exec", "-it", "box", "sh"]),
    )?;
    ensure!(run.exit_code == Some(7), "exec -it: {run:?}");

    // Detaching from an exec leaves its process running, as with dockerd.
    let run = pty_drive(
        &json!([
            {"expect": "ready", "timeout": 15},
            {"send": "\u{10}\u{11}"},
        ]),
        &docker.command_line(&[
            "exec",
            "-it",
            "box",
            "sh",
            "-c",
            "echo ready; exec sleep 123",
        ]),
    )?;
    ensure!(
        run.output.contains("read escape sequence"),
        "exec -it then detach: {run:?}"
    );
    let ps = docker.ok(&["exec", "box", "ps"])?;
    ensure!(ps.contains("sleep 123"), "after detaching from exec: {ps}");

    // run -it through a pseudo-terminal: the container's own terminal, resized by the CLI.
    let run = pty_drive(
        &json!([
            {"expect": "# ", "timeout": 15},
            {"send": "stty size\r"},
            {"expect": "24 80", "timeout": 10},
            {"send": "exit 9\r"},
        ]),
        &docker.command_line(&["run", "-it", "--rm", &repo, "sh"]),
    )?;
    ensure!(run.exit_code == Some(9), "run -it: {run:?}");

    // attach to a running tty container, then detach with ctrl-p ctrl-q: it keeps running.
    docker.ok(&["run", "-dit", "--name", "shell", &repo, "sh"])?;
    track_pod(&t, &docker, "shell")?;
    let run = pty_drive(
        &json!([
            {"sleep": 1},
            {"send": "echo attached-$((1+1))\r"},
            {"expect": "attached-2", "timeout": 10},
            {"send": "\u{10}\u{11}"},
        ]),
        &docker.command_line(&["attach", "shell"]),
    )?;
    // The CLI itself sees the keys too, and says so (as it does with dockerd).
    ensure!(
        run.output.contains("read escape sequence"),
        "attach then detach: {run:?}"
    );
    let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", "shell"])?;
    ensure!(st.trim() == "running", "after detaching: {st:?}");

    docker.ok(&["rm", "-f", "box", "shell"])?;
    leak_free(t).await
}

docker_test!(python_sdk_streams, python_sdk_streams_body, []);
async fn python_sdk_streams_body() -> Result<()> {
    if !python_sdk_present()? {
        println!("SKIP python_sdk_streams: PyPI docker 7.x missing (run scripts/install-deps.sh)");
        return Ok(());
    }
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let repo = format!("{}/busybox", reg.host);
    let v =
        run_sdk_script("sdk_streams.py", &[&unix_host(&t.d), &repo]).context("sdk_streams.py")?;
    for key in ["pod", "pod2"] {
        if let Some(p) = v[key].as_str() {
            t.track(p);
        }
    }
    let want = json!({
        "run_output": "from-run\n",
        "exec_code": 4,
        "exec_output": "from-exec\n",
        "attach_logs": "logged\n",
        "left": [],
    });
    for (k, w) in want.as_object().into_iter().flatten() {
        ensure!(&v[k] == w, "{k}: got {}, want {w} (all: {v})", v[k]);
    }
    leak_free(t).await
}
