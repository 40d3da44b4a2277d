//! berthd's Docker API, image endpoints, driven by real clients against a real berthd and
//! the local test registry: the docker CLI 28 (/usr/local/bin/docker, which negotiates down
//! to API 1.41), Debian's docker 20.10 CLI (/usr/bin/docker) and the Python SDK (PyPI
//! `docker` 7.x). No hand-written client stands in for them.

use anyhow::{Context, Result, ensure};
use berth_tests::{Berthd, BerthdOptions, PushedImage, Registry, TestImage, images};

use berth_tests::docker::{CLI_28, Docker, python_sdk_present, run_sdk_script, unix_host};
use berth_tests::{docker_cli_tests, docker_test};

/// Registry with busybox pushed as `busybox:latest`, and a berthd.
async fn setup() -> Result<(Registry, PushedImage, Berthd)> {
    let reg = Registry::start()?;
    let img = reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let d = Berthd::start_with(BerthdOptions::default()).await?;
    Ok((reg, img, d))
}

/// Nothing of the image store is left after everything was removed.
fn store_is_empty(d: &Berthd) -> Result<()> {
    let snaps = d.root_dir.join("images/snapshots");
    let left: Vec<_> = std::fs::read_dir(&snaps)
        .with_context(|| format!("list {snaps:?}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    ensure!(left.is_empty(), "snapshots left after rmi: {left:?}");
    Ok(())
}

docker_cli_tests!(image_walkthrough, cli_28_images, cli_20_images);

/// version, info, pull, images, inspect, tag, history, rmi, prune and the errors, as a
/// person types them.
async fn image_walkthrough(bin: &str) -> Result<()> {
    let (reg, img, mut d) = setup().await?;
    let docker = Docker::new(bin, unix_host(&d))?;
    let repo = format!("{}/busybox", reg.host);
    let short = &img.id["sha256:".len()..][..12];

    let v = docker.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ])?;
    ensure!(v.trim() == "1.41 linux", "server version: {v:?}");
    let v = docker.ok(&["version", "--format", "{{.Client.APIVersion}}"])?;
    ensure!(
        v.trim() == "1.41",
        "the client did not negotiate down to 1.41: {v:?}"
    );
    let info = docker.ok(&[
        "info",
        "--format",
        "{{.Images}} {{.OSType}} {{.DockerRootDir}}",
    ])?;
    ensure!(
        info.trim() == format!("0 linux {}", d.root_dir.display()),
        "info: {info:?}"
    );

    // Pull: the progress lines per layer, then dockerd's status line.
    let pulled = docker.ok(&["pull", &repo])?;
    for want in [
        "latest: Pulling from busybox",
        "Pull complete",
        &format!("Digest: {}", img.digest),
        &format!("Status: Downloaded newer image for {repo}:latest"),
    ] {
        ensure!(
            pulled.contains(want),
            "pull output lacks {want:?}:\n{pulled}"
        );
    }
    let again = docker.ok(&["pull", &format!("{repo}:latest")])?;
    ensure!(
        again.contains(&format!("Status: Image is up to date for {repo}:latest")),
        "second pull:\n{again}"
    );

    let list = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])?;
    ensure!(
        list.trim() == format!("{repo}:latest {short}"),
        "images: {list:?}"
    );
    let digests = docker.ok(&["images", "--digests", "--format", "{{.Digest}}"])?;
    ensure!(
        digests.trim() == img.digest,
        "images --digests: {digests:?}"
    );

    let inspect = docker.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}|{{json .RepoTags}}|{{.Os}}/{{.Architecture}}|{{json .Config.Cmd}}|{{len .RootFS.Layers}}|{{.RootFS.Type}}",
        &repo,
    ])?;
    let layers = img.built.amd64()?.diff_ids.len();
    let want = format!(
        "{}|[\"{repo}:latest\"]|linux/amd64|[\"sh\"]|{layers}|layers",
        img.id
    );
    ensure!(
        inspect.trim() == want,
        "inspect: {inspect:?}, want {want:?}"
    );
    // By short id and by digest too.
    docker.ok(&["image", "inspect", short])?;
    docker.ok(&["image", "inspect", &img.by_digest()])?;

    docker.ok(&["tag", &repo, &format!("{repo}:v2")])?;
    docker.ok(&["tag", short, "mine/copy:1"])?;
    let list = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    let mut names: Vec<String> = list.lines().map(str::to_string).collect();
    names.sort();
    let mut want = vec![
        "mine/copy:1".to_string(),
        format!("{repo}:latest"),
        format!("{repo}:v2"),
    ];
    want.sort();
    ensure!(names == want, "images after tag: {names:?}");
    let only = docker.ok(&[
        "images",
        "mine/copy",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])?;
    ensure!(only.trim() == "mine/copy:1", "images mine/copy: {only:?}");

    let history = docker.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Size}}",
        &repo,
    ])?;
    let rows: Vec<&str> = history.lines().collect();
    ensure!(rows.len() == layers, "history rows: {rows:?}");
    ensure!(
        rows[0].starts_with(&img.id),
        "history's newest row: {rows:?}"
    );

    let untag = docker.ok(&["rmi", &format!("{repo}:v2")])?;
    ensure!(
        untag.trim() == format!("Untagged: {repo}:v2"),
        "rmi of one tag: {untag:?}"
    );
    // Two repositories name the image: removing it by id must be forced.
    let e = docker.fails(&["rmi", short])?;
    ensure!(
        e.contains(&format!("unable to delete {short} (must be forced) - image is referenced in multiple repositories")),
        "rmi by id without -f: {e:?}"
    );
    let gone = docker.ok(&["rmi", "-f", short])?;
    for want in [
        format!("Untagged: {repo}:latest"),
        "Untagged: mine/copy:1".to_string(),
        format!("Untagged: {}", img.by_digest()),
        format!("Deleted: {}", img.id),
    ] {
        ensure!(gone.contains(&want), "rmi -f lacks {want:?}:\n{gone}");
    }
    ensure!(
        docker.ok(&["images", "-q"])?.trim().is_empty(),
        "images left after rmi -f"
    );
    store_is_empty(&d)?;
    let pruned = docker.ok(&["image", "prune", "-f"])?;
    ensure!(
        pruned.contains("Total reclaimed space: 0B"),
        "prune: {pruned:?}"
    );
    // -a: images no container uses (none are left here); docker_system covers the rest.
    let pruned = docker.ok(&["image", "prune", "-a", "-f"])?;
    ensure!(
        pruned.contains("Total reclaimed space: 0B"),
        "prune -a: {pruned:?}"
    );

    // Bad input gets dockerd's errors and exit code 1.
    let e = docker.fails(&["image", "inspect", "nosuch"])?;
    ensure!(e.contains("No such image: nosuch"), "inspect nosuch: {e:?}");
    // The 20.10 CLI words a 404 of rmi itself ("Error: No such image: nosuch"); the 28 CLI
    // prints dockerd's message ("… No such image: nosuch:latest").
    let e = docker.fails(&["rmi", "nosuch"])?;
    ensure!(e.contains("No such image: nosuch"), "rmi nosuch: {e:?}");
    let e = docker.fails(&["tag", "nosuch", "x:1"])?;
    ensure!(
        e.contains("No such image: nosuch:latest"),
        "tag nosuch: {e:?}"
    );
    let e = docker.fails(&["pull", &format!("{}/nosuch", reg.host)])?;
    ensure!(
        e.contains(&format!(
            "manifest for {}/nosuch:latest not found",
            reg.host
        )),
        "pull nosuch: {e:?}"
    );
    let e = docker.fails(&["search", "busybox"])?;
    ensure!(e.contains("no registry index"), "search: {e:?}");

    d.stop_and_clean().await?;
    ensure!(
        !d.docker_socket.exists(),
        "docker socket left after SIGTERM"
    );
    Ok(())
}

docker_test!(api_version_bounds, api_version_bounds_body, [CLI_28]);
/// A client that insists on a newer API than 1.41 gets dockerd's 400; an older one is served.
async fn api_version_bounds_body() -> Result<()> {
    let d = Berthd::start().await?;
    let mut docker = Docker::new(CLI_28, unix_host(&d))?;
    docker
        .env
        .push(("DOCKER_API_VERSION".into(), "1.50".into()));
    let e = docker.fails(&["images"])?;
    ensure!(
        e.contains("client version 1.50 is too new. Maximum supported API version is 1.41"),
        "{e:?}"
    );
    docker.env = vec![("DOCKER_API_VERSION".into(), "1.30".into())];
    let v = docker.ok(&["version", "--format", "{{.Client.APIVersion}}"])?;
    ensure!(v.trim() == "1.30", "{v:?}");
    docker.ok(&["images"])?;
    Ok(())
}

docker_test!(python_sdk_images, python_sdk_images_body, ["python3"]);
async fn python_sdk_images_body() -> Result<()> {
    if !python_sdk_present()? {
        println!("SKIP python_sdk_images: PyPI docker 7.x missing (run scripts/install-deps.sh)");
        return Ok(());
    }
    let (reg, img, d) = setup().await?;
    let repo = format!("{}/busybox", reg.host);
    let v = run_sdk_script("sdk_images.py", &[&unix_host(&d), &repo])?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    ensure!(
        s("api_version") == "1.41" && s("server_api") == "1.41",
        "{v}"
    );
    ensure!(v["ping"] == true, "{v}");
    ensure!(s("pulled_id") == img.id && s("inspect_id") == img.id, "{v}");
    ensure!(
        v["pulled_tags"] == serde_json::json!([format!("{repo}:latest")]),
        "{v}"
    );
    ensure!(
        v["listed"] == serde_json::json!([format!("{repo}:latest")]),
        "{v}"
    );
    ensure!(v["filtered"] == serde_json::json!([img.id]), "{v}");
    ensure!(s("inspect_os") == "linux", "{v}");
    ensure!(
        v["inspect_layers"] == img.built.amd64()?.diff_ids.len(),
        "{v}"
    );
    ensure!(
        v["tags_after_tag"] == serde_json::json!([format!("{repo}:latest"), format!("{repo}:sdk")]),
        "{v}"
    );
    ensure!(v["history_len"].as_u64().unwrap_or(0) >= 1, "{v}");
    ensure!(v["listed_after_remove"] == serde_json::json!([]), "{v}");
    ensure!(
        s("missing").contains("No such image: nosuch-image:latest"),
        "{v}"
    );
    ensure!(s("pull_missing").contains("not found"), "{v}");
    store_is_empty(&d)?;
    Ok(())
}

docker_test!(tcp_needs_mutual_tls, tcp_needs_mutual_tls_body, [CLI_28]);
/// `[docker.tcp]`: served only with TLS, and only to clients with a certificate from the
/// configured CA.
async fn tcp_needs_mutual_tls_body() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = berth_tests::certs::TestCa::new(dir.path())?;
    let server = ca.issue_server(dir.path(), "server", &["localhost", "127.0.0.1"])?;
    let client = ca.issue_client(dir.path(), "client", "docker-user")?;
    let port = berth_tests::free_port()?;
    let d = Berthd::start_with(BerthdOptions::toml(format!(
        "[docker.tcp]\nenabled = true\naddress = \"127.0.0.1:{port}\"\n\
         tls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\n",
        server.cert, server.key, ca.ca_pem
    )))
    .await?;
    let docker = Docker::new(CLI_28, format!("tcp://127.0.0.1:{port}"))?;
    let ca_pem = ca.ca_pem.display().to_string();
    let (cert, key) = (
        client.cert.display().to_string(),
        client.key.display().to_string(),
    );
    let v = docker.ok(&[
        "--tlsverify",
        "--tlscacert",
        &ca_pem,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "version",
        "--format",
        "{{.Server.APIVersion}}",
    ])?;
    ensure!(v.trim() == "1.41", "{v:?}");
    // No client certificate: the handshake is refused.
    let out = docker.output(&["--tlsverify", "--tlscacert", &ca_pem, "images"])?;
    ensure!(!out.status.success(), "served without a client certificate");
    // Plain HTTP on the TLS port: refused too.
    let out = docker.output(&["images"])?;
    ensure!(!out.status.success(), "served without TLS");
    // The unix socket still serves.
    Docker::new(CLI_28, unix_host(&d))?.ok(&["images"])?;
    Ok(())
}

docker_test!(
    python_sdk_pull_with_credentials,
    python_sdk_auth_body,
    ["python3", "htpasswd"]
);
/// Credentials from `X-Registry-Auth` (the SDK's `auth_config`) reach the registry; without
/// them, or with a wrong password, the pull fails with the registry's refusal, also after
/// another request's right credentials were used.
async fn python_sdk_auth_body() -> Result<()> {
    if !python_sdk_present()? {
        println!(
            "SKIP python_sdk_pull_with_credentials: PyPI docker 7.x missing (run scripts/install-deps.sh)"
        );
        return Ok(());
    }
    let reg = Registry::start_secure()?;
    let img = reg.push(&images::build(TestImage::Busybox)?)?;
    let (user, pass) = reg.creds.clone().context("registry without credentials")?;
    let ca = reg.ca_pem.as_ref().context("registry without CA")?;
    let d = Berthd::start_with(BerthdOptions::toml(format!(
        "[registries.\"{}\"]\nca_file = {:?}\n",
        reg.host,
        ca.display().to_string()
    )))
    .await?;
    let repo = format!("{}/busybox", reg.host);
    let v = run_sdk_script("sdk_auth.py", &[&unix_host(&d), &repo, "1", &user, &pass])?;
    // The *_after pulls come once the right credentials succeeded: they must not reuse the
    // header or token those earned.
    for key in ["none", "wrong", "none_after", "wrong_after"] {
        ensure!(v[key]["status"] == 401, "{key}: {v}");
        let e = v[key]["error"].as_str().unwrap_or_default();
        ensure!(e.contains("unauthorized"), "{key}: {e:?}");
    }
    ensure!(v["right"]["id"] == img.id.as_str(), "{v}");
    ensure!(v["listed"] == serde_json::json!([img.id]), "{v}");
    Ok(())
}
