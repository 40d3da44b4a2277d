//! berthd's Docker API, images made from containers and moved around as files: diff,
//! commit, save/load, export/import and push/pull back, driven by the docker CLI 28
//! (/usr/local/bin/docker) and Debian's docker 20.10 CLI (/usr/bin/docker) against a real
//! berthd and the local test registry.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use berth_tests::docker::{CLI_28, Docker, leak_free, track_pod, unix_host};
use berth_tests::docker_runs::wait_exited;
use berth_tests::pods::PodTest;
use berth_tests::{Berthd, BerthdOptions, Registry, TestImage, images};
use berth_tests::{docker_cli_tests, docker_test};

/// `docker run --rm image args…`'s output.
fn run(docker: &Docker, image: &str, args: &[&str]) -> Result<String> {
    let mut a = vec!["run", "--rm", image];
    a.extend_from_slice(args);
    docker.ok(&a)
}

/// What a committed image must show: the file written, the file deleted stays deleted.
fn check_image(docker: &Docker, image: &str, what: &str) -> Result<()> {
    let out = run(docker, image, &[])?;
    ensure!(out == "hello\n", "{what}: default command printed {out:?}");
    let out = run(
        docker,
        image,
        &[
            "sh",
            "-c",
            "test -e /etc/group && echo present || echo gone",
        ],
    )?;
    ensure!(out.trim() == "gone", "{what}: /etc/group is {out:?}");
    Ok(())
}

docker_cli_tests!(image_ops, cli_28_image_ops, cli_20_image_ops);

async fn image_ops(bin: &str) -> Result<()> {
    let reg = Registry::start()?;
    let busybox = images::build(TestImage::Busybox)?;
    reg.push_as(&busybox, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let repo = format!("{}/busybox", reg.host);
    let work = tempfile::tempdir()?;

    // A container that adds, changes and deletes files.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "changer",
        &repo,
        "sh",
        "-c",
        "echo hello > /hello; rm /etc/group; echo extra >> /etc/passwd",
    ])?;
    track_pod(&t, &docker, "changer")?;
    wait_exited(&docker, "changer")?;

    let diff = docker.ok(&["diff", "changer"])?;
    // As dockerd shows it: the runtime's mount points (/etc/hosts, …) are not changes.
    ensure!(
        diff == "C /etc\nD /etc/group\nC /etc/passwd\nA /hello\n",
        "diff: {diff:?}"
    );
    let e = docker.fails(&["diff", "nosuch"])?;
    ensure!(e.contains("No such container"), "diff nosuch: {e:?}");

    // commit, with a change, and run the new image.
    let id = docker.ok(&[
        "commit",
        "--change",
        r#"CMD ["cat","/hello"]"#,
        "--change",
        "ENV MADE_BY=commit",
        "-a",
        "tester",
        "-m",
        "first",
        "changer",
        "img:v1",
    ])?;
    ensure!(id.trim().starts_with("sha256:"), "commit printed {id:?}");
    check_image(&docker, "img:v1", "committed")?;
    let env = run(&docker, "img:v1", &["sh", "-c", "echo $MADE_BY"])?;
    ensure!(env.trim() == "commit", "ENV change: {env:?}");
    let meta = docker.ok(&["inspect", "-f", "{{.Author}} {{.Comment}}", "img:v1"])?;
    ensure!(
        meta.trim() == "tester first",
        "author and comment: {meta:?}"
    );
    let hist = docker.ok(&["history", "--format", "{{.CreatedBy}}", "img:v1"])?;
    ensure!(hist.lines().count() >= 2, "history: {hist:?}");
    let e = docker.fails(&["commit", "nosuch", "x:1"])?;
    ensure!(e.contains("No such container"), "commit nosuch: {e:?}");

    // A running container: paused for the commit, running again after it.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "runner",
        &repo,
        "sh",
        "-c",
        "echo live > /live; sleep 300",
    ])?;
    track_pod(&t, &docker, "runner")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !docker.ok(&["diff", "runner"])?.contains("A /live") {
        ensure!(
            Instant::now() < deadline,
            "/live never showed in docker diff"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let live_tar = work.path().join("live.tar");
    docker.ok(&["export", "-o", &live_tar.display().to_string(), "runner"])?;
    let bytes = std::fs::read(&live_tar)?;
    ensure!(
        bytes.windows(5).any(|w| w == b"live\n") && bytes.len() > 1 << 20,
        "export of a running container: {} bytes",
        bytes.len()
    );
    docker.ok(&["commit", "runner", "live:v1"])?;
    let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", "runner"])?;
    ensure!(st.trim() == "running", "runner after commit: {st:?}");
    let live = run(&docker, "live:v1", &["cat", "/live"])?;
    ensure!(live == "live\n", "committed running container: {live:?}");
    docker.ok(&["rm", "-f", "runner"])?;
    docker.ok(&["rmi", "live:v1"])?;

    // save → rmi → load → run.
    let archive = work.path().join("img.tar");
    let archive_s = archive.display().to_string();
    docker.ok(&["save", "-o", &archive_s, "img:v1"])?;
    docker.ok(&["rmi", "img:v1"])?;
    ensure!(
        docker.output(&["inspect", "img:v1"])?.status.code() == Some(1),
        "img:v1 still there after rmi"
    );
    let out = docker.ok(&["load", "-i", &archive_s])?;
    ensure!(out.contains("Loaded image: img:v1"), "load printed {out:?}");
    let loaded = docker.ok(&["inspect", "-f", "{{.Id}}", "img:v1"])?;
    ensure!(
        loaded.trim() == id.trim(),
        "load changed the id: {loaded:?} vs {id:?}"
    );
    check_image(&docker, "img:v1", "loaded")?;
    let e = docker.fails(&["save", "-o", &archive_s, "nosuch:1"])?;
    ensure!(e.contains("No such image"), "save nosuch: {e:?}");
    let junk = work.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tarball")?;
    let e = docker.fails(&["load", "-i", &junk.display().to_string()])?;
    ensure!(e.contains("invalid image archive"), "load junk: {e:?}");

    // Archives other tools write: skopeo's docker-archive and an OCI layout archive.
    for (kind, name) in [
        ("docker-archive", "skopeo/box:v1"),
        ("oci-archive", "ocibox:v2"),
    ] {
        let file = work.path().join(format!("{kind}.tar"));
        let status = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci:{}:{}", busybox.layout.display(), busybox.tag))
            .arg(format!("{kind}:{}:{name}", file.display()))
            .status()?;
        ensure!(status.success(), "skopeo copy to {kind}: {status}");
        let out = docker.ok(&["load", "-i", &file.display().to_string()])?;
        ensure!(
            out.contains(&format!("Loaded image: {name}")),
            "load {kind}: {out:?}"
        );
        let echo = run(&docker, name, &["echo", "ok"])?;
        ensure!(echo == "ok\n", "run {name}: {echo:?}");
        docker.ok(&["rmi", name])?;
    }

    // export → import (a file, and stdin) → run.
    let fs_tar = work.path().join("fs.tar");
    docker.ok(&["export", "-o", &fs_tar.display().to_string(), "changer"])?;
    let out = docker.ok(&[
        "import",
        "--change",
        r#"CMD ["cat","/hello"]"#,
        &fs_tar.display().to_string(),
        "imported:v1",
    ])?;
    ensure!(out.trim().starts_with("sha256:"), "import printed {out:?}");
    check_image(&docker, "imported:v1", "imported")?;
    let bytes = std::fs::read(&fs_tar)?;
    let out = docker.output_stdin(&["import", "-", "piped:v1"], &bytes)?;
    ensure!(out.status.success(), "import -: {out:?}");
    let piped = run(&docker, "piped:v1", &["cat", "/hello"])?;
    ensure!(piped == "hello\n", "piped import: {piped:?}");
    let out = docker.output_stdin(&["import", "-", "bad:v1"], b"not a tarball at all")?;
    ensure!(!out.status.success(), "importing junk succeeded");
    // No internet: a URL source is refused, saying so.
    let e = docker.fails(&["import", "http://192.0.2.1/rootfs.tar", "web:v1"])?;
    ensure!(e.contains("is not supported"), "import from a URL: {e:?}");

    // tag → push → rmi → pull back → run.
    let pushed = format!("{}/pushed:v1", reg.host);
    docker.ok(&["tag", "img:v1", &pushed])?;
    let out = docker.ok(&["push", &pushed])?;
    ensure!(out.contains("v1: digest: sha256:"), "push printed {out:?}");
    docker.ok(&["rmi", "img:v1", &pushed])?;
    let out = docker.ok(&["pull", &pushed])?;
    ensure!(
        out.contains("Downloaded newer image"),
        "pull printed {out:?}"
    );
    check_image(&docker, &pushed, "pushed and pulled")?;
    let e = docker.fails(&["push", &format!("{}/nosuch:v1", reg.host)])?;
    ensure!(e.contains("does not exist locally"), "push nosuch: {e:?}");

    docker.ok(&["rm", "changer"])?;
    docker.ok(&["rmi", &pushed, "imported:v1", "piped:v1", &repo])?;
    let left = docker.ok(&["images", "-q"])?;
    ensure!(left.trim().is_empty(), "images left: {left:?}");
    leak_free(t).await
}

docker_test!(push_with_credentials, push_auth_body, [CLI_28, "htpasswd"]);

/// `docker push` to a registry behind TLS and basic auth: the CLI's credentials (its
/// config.json, sent as X-Registry-Auth) reach the registry for the blob uploads and the
/// manifest; without them the push fails with the registry's refusal.
async fn push_auth_body() -> Result<()> {
    let reg = Registry::start_secure()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let (user, pass) = reg.creds.clone().context("registry without credentials")?;
    let ca = reg.ca_pem.as_ref().context("registry without CA")?;
    let mut d = Berthd::start_with(BerthdOptions::toml(format!(
        "[registries.\"{}\"]\nca_file = {:?}\n",
        reg.host,
        ca.display().to_string()
    )))
    .await?;
    let config = tempfile::tempdir()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        config.path().join("config.json"),
        serde_json::json!({"auths": {&reg.host: {"auth": auth}}}).to_string(),
    )?;
    let mut docker = Docker::new(CLI_28, unix_host(&d))?;
    docker
        .env
        .push(("DOCKER_CONFIG".into(), config.path().display().to_string()));
    let anonymous = Docker::new(CLI_28, unix_host(&d))?;

    let source = format!("{}/busybox:latest", reg.host);
    let target = format!("{}/copy:v2", reg.host);
    docker.ok(&["pull", &source])?;
    docker.ok(&["tag", &source, &target])?;
    let e = anonymous.fails(&["push", &target])?;
    ensure!(
        e.to_lowercase().contains("unauthorized"),
        "push without credentials: {e:?}"
    );
    let out = docker.ok(&["push", &target])?;
    ensure!(out.contains("v2: digest: sha256:"), "push printed {out:?}");
    let manifest = reg.manifest_raw(&target)?;
    ensure!(
        manifest["layers"].as_array().is_some_and(|l| l.len() == 3),
        "{manifest}"
    );
    docker.ok(&["rmi", &source, &target])?;
    docker.ok(&["pull", &target])?;
    docker.ok(&["rmi", &target])?;
    d.stop_and_clean().await?;
    Ok(())
}
