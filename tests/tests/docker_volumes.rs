//! berthd's Docker volume commands, driven by the docker CLIs (28 and Debian's 20.10) and
//! the Python SDK against a real berthd and the local test registry: volume
//! create/ls/inspect/rm/prune and their filters, data shared between containers, the
//! in-use and unknown errors, the local driver's options, berthd restarts, and nothing
//! left behind. How containers get volumes (anonymous, copy-up, tmpfs…) is in
//! docker_mounts.rs.

use anyhow::{Result, ensure};
use berth_tests::docker::leak_free;
use berth_tests::docker::{Docker, python_sdk_present, run_sdk_script, unix_host};
use berth_tests::docker_runs::{mounts_of, run_to_end, volume_names};
use berth_tests::pods::PodTest;
use berth_tests::{Registry, TestImage, images};
use berth_tests::{docker_cli_tests, docker_test};
docker_cli_tests!(walkthrough, cli_28_volumes, cli_20_volumes);

async fn walkthrough(bin: &str) -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let mut t = PodTest::start().await?;
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let bb = format!("{}/busybox", reg.host);
    docker.ok(&["pull", "-q", &bb])?;
    let vol_dir = t.root_dir.join("volumes");

    // create, ls, inspect.
    let out = docker.ok(&["volume", "create", "--label", "tier=db", "data"])?;
    ensure!(out.trim() == "data", "volume create printed {out:?}");
    let ls = docker.ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"])?;
    ensure!(ls.trim() == "local data", "volume ls: {ls:?}");
    let i = docker.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Mountpoint}} {{index .Labels \"tier\"}}",
        "data",
    ])?;
    let want = format!(
        "data local local {} db",
        vol_dir.join("data/_data").display()
    );
    ensure!(i.trim() == want, "volume inspect: {i:?}, want {want:?}");
    // Creating it again changes nothing.
    docker.ok(&["volume", "create", "data"])?;

    // One container writes, another reads.
    let out = run_to_end(
        &t,
        &docker,
        "writer",
        &["-v", "data:/data", &bb, "sh", "-c", "echo shared > /data/f"],
    )?;
    ensure!(out.is_empty(), "writer: {out:?}");
    let out = run_to_end(
        &t,
        &docker,
        "reader",
        &[
            "-v",
            "data:/data:ro",
            &bb,
            "sh",
            "-c",
            "cat /data/f; touch /data/g 2>&1 || echo refused",
        ],
    )?;
    ensure!(
        out.starts_with("shared\n") && out.trim_end().ends_with("refused"),
        "reader: {out:?}"
    );
    ensure!(
        mounts_of(&docker, "reader")? == "volume:/data=data:false",
        "reader's mounts: {:?}",
        mounts_of(&docker, "reader")?
    );
    let src = docker.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Source}}{{end}}",
        "reader",
    ])?;
    ensure!(
        src.trim() == vol_dir.join("data/_data").display().to_string(),
        "Source: {src:?}"
    );

    // In use: rm refuses, naming the containers.
    let err = docker.fails(&["volume", "rm", "data"])?;
    ensure!(
        err.contains("volume is in use") && err.contains("remove data"),
        "volume rm in use: {err:?}"
    );
    let err = docker.fails(&["volume", "rm", "nope"])?;
    ensure!(
        err.to_lowercase().contains("no such volume"),
        "volume rm unknown: {err:?}"
    );
    let err = docker.fails(&["volume", "inspect", "nope"])?;
    ensure!(
        err.to_lowercase().contains("no such volume"),
        "volume inspect unknown: {err:?}"
    );
    let err = docker.fails(&["volume", "create", "--driver", "nfs", "x1"])?;
    ensure!(err.contains("plugin"), "unknown driver: {err:?}");

    // A local volume that binds a host directory (compose's driver_opts o=bind); other
    // driver options are refused.
    let host_dir = tempfile::tempdir()?;
    let device = format!("device={}", host_dir.path().display());
    docker.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "bound",
    ])?;
    let out = run_to_end(
        &t,
        &docker,
        "binder",
        &[
            "-v",
            "bound:/b",
            &bb,
            "sh",
            "-c",
            "echo via-bind > /b/f; cat /b/f",
        ],
    )?;
    ensure!(out == "via-bind\n", "bind volume: {out:?}");
    ensure!(
        std::fs::read_to_string(host_dir.path().join("f"))? == "via-bind\n",
        "the bind volume's file is in the host directory"
    );
    docker.ok(&["rm", "binder"])?;
    docker.ok(&["volume", "rm", "bound"])?;
    ensure!(
        host_dir.path().join("f").is_file(),
        "volume rm leaves the device alone"
    );
    let err = docker.fails(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "t1",
    ])?;
    ensure!(err.contains("tmpfs mount"), "type=tmpfs: {err:?}");

    // ps --filter volume=: by name and by destination.
    let ps = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "volume=data",
        "--format",
        "{{.Names}}",
    ])?;
    let mut names: Vec<&str> = ps.lines().collect();
    names.sort();
    ensure!(
        names == ["reader", "writer"],
        "ps --filter volume=data: {ps:?}"
    );
    docker.ok(&["volume", "create", "fresh"])?;
    let dangling = volume_names(&docker, &["--filter", "dangling=true"])?;
    ensure!(dangling == ["fresh"], "dangling: {dangling:?}");
    let f = volume_names(&docker, &["--filter", "label=tier=db"])?;
    ensure!(f == ["data"], "label filter: {f:?}");
    let f = volume_names(&docker, &["--filter", "name=fre"])?;
    ensure!(f == ["fresh"], "name filter: {f:?}");

    // Volumes, their data and their users outlive berthd.
    t.d.restart().await?;
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let err = docker.fails(&["volume", "rm", "data"])?;
    ensure!(err.contains("volume is in use"), "after restart: {err:?}");
    let out = run_to_end(
        &t,
        &docker,
        "later",
        &["-v", "data:/data", &bb, "cat", "/data/f"],
    )?;
    ensure!(out == "shared\n", "after restart: {out:?}");

    // Remove the containers, then prune every unused volume (API 1.41: named ones too).
    for c in ["writer", "reader", "later"] {
        docker.ok(&["rm", c])?;
    }
    let before = volume_names(&docker, &[])?;
    ensure!(before == ["data", "fresh"], "before prune: {before:?}");
    let out = docker.ok(&["volume", "prune", "-f"])?;
    for n in &before {
        ensure!(out.contains(n.as_str()), "prune output lacks {n}: {out:?}");
    }
    ensure!(out.contains("Total reclaimed space"), "prune: {out:?}");
    ensure!(
        volume_names(&docker, &[])?.is_empty(),
        "volumes left after prune"
    );
    let left: Vec<_> = std::fs::read_dir(&vol_dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    ensure!(left.is_empty(), "left in {}: {left:?}", vol_dir.display());
    leak_free(t).await
}

docker_test!(python_sdk_volumes, python_sdk_volumes_body, ["python3"]);

/// The Python SDK's volume calls and `containers.run(volumes=…)`.
async fn python_sdk_volumes_body() -> Result<()> {
    if !python_sdk_present()? {
        eprintln!("SKIP python_sdk_volumes: the Python docker SDK 7.x is not installed");
        return Ok(());
    }
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let image = format!("{}/busybox:latest", reg.host);
    let v = run_sdk_script("sdk_volumes.py", &[&unix_host(&t.d), &image])?;
    for pod in v["pods"].as_array().into_iter().flatten() {
        t.track(pod.as_str().unwrap_or_default());
    }
    ensure!(v["created"] == "sdkvol", "{v}");
    ensure!(v["labels"]["k"] == "v", "{v}");
    ensure!(
        v["listed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "sdkvol")),
        "{v}"
    );
    ensure!(v["read"] == "from-sdk\n", "{v}");
    ensure!(v["in_use_status"] == 409, "{v}");
    ensure!(v["missing_status"] == 404, "{v}");
    ensure!(
        v["pruned"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "sdkvol")),
        "{v}"
    );
    ensure!(v["left"].as_array().is_some_and(|a| a.is_empty()), "{v}");
    leak_free(t).await
}
