//! berthd's classic builder (`docker build`, `POST /build`) and `docker login`
//! (`POST /auth`), driven by the docker CLI 28 (/usr/local/bin/docker, with
//! DOCKER_BUILDKIT=0: buildx is not installed) and Debian's docker 20.10 CLI against a real
//! berthd and the local test registry.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use berth_tests::docker::{
    CLI_20, CLI_28, Docker, leak_free, python_sdk_present, run_sdk_script, unix_host,
};
use berth_tests::pods::PodTest;
use berth_tests::{Berthd, BerthdOptions, Registry, TestImage, images};
use berth_tests::{docker_cli_tests, docker_test};

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// `docker run --rm image args…`'s output.
fn run(docker: &Docker, image: &str, args: &[&str]) -> Result<String> {
    let mut a = vec!["run", "--rm", image];
    a.extend_from_slice(args);
    docker.ok(&a)
}

fn no_leftovers(docker: &Docker, what: &str) -> Result<()> {
    let ps = docker.ok(&["ps", "-a", "-q"])?;
    ensure!(ps.trim().is_empty(), "{what}: containers left: {ps:?}");
    let dangling = docker.ok(&["images", "-q", "--filter", "dangling=true"])?;
    ensure!(
        dangling.trim().is_empty(),
        "{what}: intermediate images left: {dangling:?}"
    );
    Ok(())
}

docker_cli_tests!(build_walk, cli_28_build, cli_20_build);

async fn build_walk(bin: &str) -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    // No DOCKER_BUILDKIT=0: without buildx the CLI 28 falls back to the classic builder,
    // which is what the users' plain `docker build --tag … .` gets.
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let base = format!("{}/busybox:latest", reg.host);
    docker.ok(&["pull", &base])?;

    // The seed example: FROM + COPY ./ into a directory + CMD; .dockerignore honoured.
    let site = tempfile::tempdir()?;
    write(
        site.path(),
        "Dockerfile",
        &format!(
            "FROM {base}\nCOPY ./ /usr/local/apache2/htdocs/\nCMD [\"cat\", \"/usr/local/apache2/htdocs/index.html\"]\n"
        ),
    )?;
    write(site.path(), "index.html", "<h1>pacman</h1>\n")?;
    write(site.path(), "js/game.js", "let score = 0;\n")?;
    write(site.path(), "secret.txt", "do not ship\n")?;
    write(site.path(), "debug.log", "noise\n")?;
    write(site.path(), ".dockerignore", "secret.txt\n*.log\n")?;
    let ctx = site.path().display().to_string();
    let out = docker.ok(&["build", "--tag", "my_pacman:2.0", &ctx])?;
    for want in [
        "Step 1/3 : FROM",
        "Step 2/3 : COPY ./ /usr/local/apache2/htdocs/",
        "Successfully built ",
        "Successfully tagged my_pacman:2.0",
    ] {
        ensure!(out.contains(want), "build output lacks {want:?}: {out}");
    }
    let page = run(&docker, "my_pacman:2.0", &[])?;
    ensure!(page == "<h1>pacman</h1>\n", "CMD printed {page:?}");
    let ls = run(
        &docker,
        "my_pacman:2.0",
        &[
            "sh",
            "-c",
            "cd /usr/local/apache2/htdocs && find . | sort && stat -c %u:%g js/game.js",
        ],
    )?;
    ensure!(
        ls.contains("./js/game.js") && ls.contains("./index.html"),
        "copied files: {ls}"
    );
    ensure!(
        !ls.contains("secret.txt") && !ls.contains("debug.log"),
        ".dockerignore not honoured: {ls}"
    );
    ensure!(
        ls.trim_end().ends_with("0:0"),
        "owner of copied files: {ls}"
    );
    let history = docker.ok(&["history", "-q", "my_pacman:2.0"])?;
    ensure!(history.lines().count() >= 3, "history: {history}");

    // RUN, ENV, ARG, WORKDIR, USER, COPY --chown, LABEL; two tags.
    let app = tempfile::tempdir()?;
    write(
        app.path(),
        "Dockerfile.app",
        &format!(
            "FROM {base}\n\
             ARG GREETING=hi\n\
             ENV APP_HOME=/opt/app \\\n    MODE=\"test run\"\n\
             WORKDIR $APP_HOME\n\
             RUN echo \"$GREETING from run\" > made.txt && echo building in $(pwd)\n\
             COPY --chown=tester data.txt ./\n\
             LABEL org.example.kind=app\n\
             EXPOSE 8080\n\
             HEALTHCHECK --interval=5s --retries=2 CMD test -f made.txt\n\
             USER tester\n\
             CMD [\"sh\", \"-c\", \"pwd; id -u; cat made.txt data.txt; echo $MODE; stat -c %U data.txt\"]\n"
        ),
    )?;
    write(app.path(), "data.txt", "data\n")?;
    let ctx = app.path().display().to_string();
    let out = docker.ok(&[
        "build",
        "-f",
        &format!("{ctx}/Dockerfile.app"),
        "--build-arg",
        "GREETING=hello",
        "-t",
        "app:1",
        "-t",
        "app:2",
        &ctx,
    ])?;
    ensure!(out.contains("building in /opt/app"), "RUN output: {out}");
    ensure!(
        out.contains("Successfully tagged app:1") && out.contains("Successfully tagged app:2"),
        "tags: {out}"
    );
    let id1 = docker.ok(&["inspect", "-f", "{{.Id}}", "app:1"])?;
    let id2 = docker.ok(&["inspect", "-f", "{{.Id}}", "app:2"])?;
    ensure!(id1 == id2, "app:1 {id1} and app:2 {id2} differ");
    let got = run(&docker, "app:2", &[])?;
    ensure!(
        got == "/opt/app\n1000\nhello from run\ndata\ntest run\ntester\n",
        "the built image ran: {got:?}"
    );
    let label = docker.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"org.example.kind\"}}",
        "app:1",
    ])?;
    ensure!(label.trim() == "app", "label: {label:?}");
    let cfg = docker.ok(&[
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}} {{json .Config.Healthcheck}}",
        "app:1",
    ])?;
    ensure!(
        cfg.contains("\"8080/tcp\"") && cfg.contains("[\"CMD-SHELL\",\"test -f made.txt\"]"),
        "EXPOSE and HEALTHCHECK in the config: {cfg}"
    );

    // A failing RUN: dockerd's message, exit 1, nothing left behind.
    let bad = tempfile::tempdir()?;
    write(
        bad.path(),
        "Dockerfile",
        &format!("FROM {base}\nENV X=1\nRUN echo before && false\nCMD [\"true\"]\n"),
    )?;
    let e = docker.fails(&["build", "-t", "bad:1", &bad.path().display().to_string()])?;
    ensure!(
        e.contains("The command '/bin/sh -c echo before && false' returned a non-zero code: 1"),
        "failed build said {e:?}"
    );
    ensure!(docker.fails(&["inspect", "bad:1"]).is_ok(), "bad:1 exists");
    // Other bad input: clear errors, exit 1.
    std::os::unix::fs::symlink("/etc", bad.path().join("outside"))?;
    for (dockerfile, want) in [
        (
            format!("FROM {base}\nCOPY outside/hostname /\n"),
            "forbidden path outside the build context",
        ),
        (
            format!("FROM {base}\nCOPY missing.txt /\n"),
            "file not found in build context",
        ),
        (
            format!("FROM {base}\nADD http://example.com/x.tgz /\n"),
            "takes files from the build context only",
        ),
        (
            format!("FROM --platform=linux/s390x {base}\n"),
            "builds for its own platform only",
        ),
        (
            format!("FROM {base}\nFOO bar\n"),
            "Unknown instruction: FOO",
        ),
        ("RUN true\n".to_string(), "no FROM"),
        (
            format!("FROM {base}\nRUN --mount=type=cache,target=/c true\n"),
            "RUN --mount needs BuildKit",
        ),
    ] {
        write(bad.path(), "Dockerfile", &dockerfile)?;
        let e = docker.fails(&["build", &bad.path().display().to_string()])?;
        ensure!(e.contains(want), "{dockerfile:?} said {e:?}");
    }
    // `--network none`: the RUN containers get loopback only.
    write(
        bad.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN ls /sys/class/net && test \"$(ls /sys/class/net)\" = lo\n"),
    )?;
    let ctx = bad.path().display().to_string();
    docker.ok(&["build", "--network", "none", "-t", "isolated:1", &ctx])?;
    docker.ok(&["rmi", "isolated:1"])?;
    docker.ok(&["rmi", "my_pacman:2.0", "app:1", "app:2", &base])?;
    no_leftovers(&docker, "after the builds")?;
    let build_dir = t.d.root_dir.join("build");
    let left: Vec<_> = std::fs::read_dir(&build_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ensure!(left.is_empty(), "build directories left: {left:?}");
    leak_free(t).await
}

docker_test!(
    login_checks_credentials,
    login_body,
    [CLI_28, CLI_20, "htpasswd"]
);

/// `docker login` against a registry behind TLS and basic auth: good credentials give
/// "Login Succeeded" and work for a pull; a wrong password is refused with the registry's
/// answer.
async fn login_body() -> Result<()> {
    let reg = Registry::start_secure()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let (user, pass) = reg.creds.clone().context("registry without credentials")?;
    let ca = reg.ca_pem.as_ref().context("registry without CA")?;
    let d = Berthd::start_with(BerthdOptions::toml(format!(
        "[registries.\"{}\"]\nca_file = {:?}\n",
        reg.host,
        ca.display().to_string()
    )))
    .await?;
    for bin in [CLI_28, CLI_20] {
        let docker = Docker::new(bin, unix_host(&d))?;
        let out = docker.output_stdin(
            &["login", "-u", &user, "--password-stdin", &reg.host],
            format!("{pass}-wrong\n").as_bytes(),
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.to_lowercase().contains("unauthorized"),
            "{bin}: login with a wrong password: {:?} {stderr:?}",
            out.status
        );
        let out = docker.output_stdin(
            &["login", "-u", &user, "--password-stdin", &reg.host],
            format!("{pass}\n").as_bytes(),
        )?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && stdout.contains("Login Succeeded"),
            "{bin}: login: {:?} {stdout:?} {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The CLI now sends the stored credentials with a pull, and with a build
        // (X-Registry-Config) for FROM's pull.
        let image = format!("{}/busybox:latest", reg.host);
        let ctx = tempfile::tempdir()?;
        write(
            ctx.path(),
            "Dockerfile",
            &format!("FROM {image}\nRUN echo built > /built\n"),
        )?;
        docker.ok(&["build", "-t", "authed:1", &ctx.path().display().to_string()])?;
        let built = run(&docker, "authed:1", &["cat", "/built"])?;
        ensure!(built == "built\n", "{bin}: built image: {built:?}");
        docker.ok(&["rmi", "authed:1", &image])?;
        docker.ok(&["pull", &image])?;
        docker.ok(&["rmi", &image])?;
        docker.ok(&["logout", &reg.host])?;
    }
    let mut d = d;
    d.stop_and_clean().await?;
    Ok(())
}

docker_cli_tests!(stages_walk, cli_28_build_stages, cli_20_build_stages);

/// Multi-stage builds (`AS`, `COPY --from` by name and index), `FROM scratch`, ADD of a
/// local tar.gz (unpacked), and `-q` printing only the id.
async fn stages_walk(bin: &str) -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let mut docker = Docker::new(bin, unix_host(&t.d))?;
    docker.env.push(("DOCKER_BUILDKIT".into(), "0".into()));
    let base = format!("{}/busybox:latest", reg.host);
    docker.ok(&["pull", &base])?;

    let dir = tempfile::tempdir()?;
    let payload = tempfile::tempdir()?;
    write(payload.path(), "hello.txt", "hello\n")?;
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(dir.path().join("data.tar.gz"))
        .arg("-C")
        .arg(payload.path())
        .arg("hello.txt")
        .status()?;
    ensure!(status.success(), "tar czf: {status}");
    write(
        dir.path(),
        "Dockerfile",
        &format!(
            "ARG BASE=nosuch/image\n\
             FROM $BASE AS builder\n\
             WORKDIR /src\n\
             RUN mkdir -p out/sub && echo built > out/sub/artifact && echo one > out/top\n\
             FROM scratch AS files\n\
             ADD data.tar.gz /unpacked/\n\
             COPY data.tar.gz /packed/\n\
             FROM {base}\n\
             COPY --from=builder /src/out /app/\n\
             COPY --from=files /unpacked/ /from-scratch/\n\
             COPY --from=0 /src/out/top /single\n\
             CMD [\"sh\", \"-c\", \"cat /app/sub/artifact /app/top /from-scratch/hello.txt /single\"]\n"
        ),
    )?;
    let ctx = dir.path().display().to_string();
    let base_arg = format!("BASE={base}");
    let id = docker.ok(&[
        "build",
        "-q",
        "--build-arg",
        &base_arg,
        "-t",
        "staged:1",
        &ctx,
    ])?;
    ensure!(
        id.trim().starts_with("sha256:") && id.trim().len() == 71 && id.lines().count() == 1,
        "build -q printed {id:?}"
    );
    let inspected = docker.ok(&["inspect", "-f", "{{.Id}}", "staged:1"])?;
    ensure!(inspected.trim() == id.trim(), "{inspected:?} vs {id:?}");
    let got = run(&docker, "staged:1", &[])?;
    ensure!(
        got == "built\none\nhello\none\n",
        "staged image printed {got:?}"
    );
    // `docker build -`: the Dockerfile alone on stdin, no context.
    let out = docker.output_stdin(
        &["build", "-t", "stdin:1", "-"],
        format!("FROM {base}\nRUN echo from stdin > /note\nCMD [\"cat\", \"/note\"]\n").as_bytes(),
    )?;
    ensure!(
        out.status.success(),
        "build -: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let got = run(&docker, "stdin:1", &[])?;
    ensure!(got == "from stdin\n", "stdin:1 printed {got:?}");
    docker.ok(&["rmi", "staged:1", "stdin:1", &base])?;
    no_leftovers(&docker, "after the multi-stage build")?;
    let all = docker.ok(&["images", "-a", "-q"])?;
    ensure!(all.trim().is_empty(), "images left: {all:?}");
    leak_free(t).await
}

docker_test!(python_sdk_build, python_sdk_build_body, ["python3"]);

/// The Python SDK's `images.build` (gzip'd custom context, buildargs, labels) reads the
/// classic builder's stream: the id, the tag, a failed RUN as a BuildError.
async fn python_sdk_build_body() -> Result<()> {
    if !python_sdk_present()? {
        println!("SKIP python_sdk_build: PyPI docker 7.x missing (run scripts/install-deps.sh)");
        return Ok(());
    }
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let base = format!("{}/busybox:latest", reg.host);
    let docker = Docker::new(CLI_28, unix_host(&t.d))?;
    docker.ok(&["pull", &base])?;
    let v = run_sdk_script("sdk_build.py", &[&unix_host(&t.d), &base])?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    ensure!(s("id").starts_with("sha256:"), "{v}");
    ensure!(v["tags"] == serde_json::json!(["sdk-built:1"]), "{v}");
    ensure!(v["labels"]["made.by"] == "sdk", "{v}");
    ensure!(s("ran") == "hello\nhi sdk\n", "{v}");
    ensure!(s("streamed").contains("Successfully built"), "{v}");
    ensure!(
        s("failure").contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{v}"
    );
    ensure!(v["containers"] == serde_json::json!([]), "{v}");
    docker.ok(&["rmi", &base])?;
    no_leftovers(&docker, "after the SDK builds")?;
    leak_free(t).await
}

docker_test!(build_cancelled_by_client, build_cancel_body, [CLI_20]);

/// A client that goes away mid-build (Ctrl-C) cancels it: the running step is killed and
/// its container removed, no image is left.
async fn build_cancel_body() -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let docker = Docker::new(CLI_20, unix_host(&t.d))?;
    let base = format!("{}/busybox:latest", reg.host);
    docker.ok(&["pull", &base])?;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN echo started && sleep 300\nCMD [\"true\"]\n"),
    )?;
    // `env` execs the CLI: killing the child kills the CLI.
    let ctx = dir.path().display().to_string();
    let cl = docker.command_line(&["build", "-t", "never:1", &ctx]);
    let mut child = std::process::Command::new(&cl[0])
        .args(&cl[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Wait until the step runs, then kill the client.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ps = docker.ok(&["ps", "-q"])?;
        if !ps.trim().is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the RUN step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ps = docker.ok(&["ps", "-a", "-q"])?;
        if ps.trim().is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the cancelled step's container is still there: {ps:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    ensure!(
        docker.fails(&["inspect", "never:1"]).is_ok(),
        "never:1 exists"
    );
    docker.ok(&["rmi", &base])?;
    no_leftovers(&docker, "after the cancelled build")?;
    leak_free(t).await
}

docker_test!(compose_build, compose_build_body, ["docker-compose"]);

/// docker-compose 1.29 (docker-py 5) building a service's image with build args.
async fn compose_build_body() -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let docker = Docker::new(CLI_28, unix_host(&t.d))?;
    let base = format!("{}/busybox:latest", reg.host);
    docker.ok(&["pull", &base])?;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM {base}\nARG GREETING=none\nRUN echo $GREETING > /g\nCMD [\"cat\", \"/g\"]\n"
        ),
    )?;
    write(
        dir.path(),
        "docker-compose.yml",
        "version: \"3\"\nservices:\n  web:\n    build:\n      context: .\n      args:\n        GREETING: compose\n    image: composed:1\n",
    )?;
    let out = std::process::Command::new("docker-compose")
        .arg("build")
        .current_dir(dir.path())
        .env("DOCKER_HOST", &docker.host)
        .env_remove("DOCKER_CONFIG")
        .output()?;
    ensure!(
        out.status.success(),
        "docker-compose build: {:?} {} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = run(&docker, "composed:1", &[])?;
    ensure!(got == "compose\n", "composed:1 printed {got:?}");
    docker.ok(&["rmi", "composed:1", &base])?;
    no_leftovers(&docker, "after docker-compose build")?;
    leak_free(t).await
}
