//! berthd's Docker volumes, driven by the docker CLIs (28 and Debian's 20.10) against a
//! real berthd and the local test registry: volume create/ls/inspect/rm/prune, data shared
//! between containers, anonymous volumes (`-v /x`, an image's VOLUME) with the image's
//! content copied up, `rm -v`, the in-use and unknown errors, berthd restarts, and nothing
//! left behind.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_tests::docker::{Docker, python_sdk_present, run_sdk_script, track_pod, unix_host};
use berth_tests::pods::PodTest;
use berth_tests::{Registry, TestImage, images};
use berth_tests::{docker_cli_tests, docker_test};

/// Waits until the container exited; its logs (stdout and stderr).
fn output_of(docker: &Docker, name: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", name])?;
        if st.trim() == "exited" {
            let out = docker.output(&["logs", name])?;
            return Ok(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        ensure!(Instant::now() < deadline, "{name} did not exit: {st:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `docker run -d` tracked for leak checks; the container's output once it exited.
fn run_to_end(t: &PodTest, docker: &Docker, name: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    docker.ok(&all)?;
    track_pod(t, docker, name)?;
    output_of(docker, name)
}

fn volume_names(docker: &Docker, extra: &[&str]) -> Result<Vec<String>> {
    let mut args = vec!["volume", "ls", "-q"];
    args.extend_from_slice(extra);
    let mut v: Vec<String> = docker
        .ok(&args)?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    Ok(v)
}

/// The volume names a container mounts, by destination: "dest=name dest=name".
fn mounts_of(docker: &Docker, name: &str) -> Result<String> {
    Ok(docker
        .ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}}:{{.Destination}}={{.Name}}:{{.RW}} {{end}}",
            name,
        ])?
        .trim()
        .to_string())
}

fn is_anonymous_name(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn leak_free(mut t: PodTest) -> Result<()> {
    let leaks = t.leaks();
    ensure!(leaks.is_empty(), "left behind while running: {leaks:?}");
    t.d.stop_and_clean().await?;
    let leaks = t.leaks();
    ensure!(
        leaks.is_empty(),
        "left behind after berthd stopped: {leaks:?}"
    );
    if let Some(l) = t.leakcheck() {
        ensure!(l.is_empty(), "leakcheck.sh: {l:?}");
    }
    Ok(())
}

docker_cli_tests!(walkthrough, cli_28_volumes, cli_20_volumes);

async fn walkthrough(bin: &str) -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    reg.push_as(&images::build(TestImage::Volume)?, "volimg", "latest")?;
    let mut t = PodTest::start().await?;
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let bb = format!("{}/busybox", reg.host);
    let volimg = format!("{}/volimg", reg.host);
    docker.ok(&["pull", "-q", &bb])?;
    docker.ok(&["pull", "-q", &volimg])?;
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

    // Anonymous volumes: `-v /x`, the image's VOLUME with its content copied up.
    let out = run_to_end(
        &t,
        &docker,
        "anon",
        &["-v", "/x", &bb, "sh", "-c", "echo a > /x/a; cat /x/a"],
    )?;
    ensure!(out == "a\n", "anon: {out:?}");
    let m = mounts_of(&docker, "anon")?;
    let anon_x = m.trim_start_matches("volume:/x=").trim_end_matches(":true");
    ensure!(is_anonymous_name(anon_x), "anon's mounts: {m:?}");
    let out = run_to_end(
        &t,
        &docker,
        "img",
        &[
            &volimg,
            "sh",
            "-c",
            "cat /data/seed; stat -c '%a %u' /data /data/seed",
        ],
    )?;
    ensure!(
        out == "seeded\n750 0\n644 1000\n",
        "image VOLUME copy-up: {out:?}"
    );
    let m = mounts_of(&docker, "img")?;
    let anon_img = m
        .trim_start_matches("volume:/data=")
        .trim_end_matches(":true");
    ensure!(is_anonymous_name(anon_img), "img's mounts: {m:?}");
    ensure!(
        std::fs::read_to_string(vol_dir.join(anon_img).join("_data/seed"))? == "seeded\n",
        "the copy is in the volume"
    );

    let cv = docker.ok(&["inspect", "-f", "{{json .Config.Volumes}}", "img"])?;
    ensure!(cv.trim() == r#"{"/data":{}}"#, "Config.Volumes: {cv:?}");
    // --volumes-from shares img's volume (here read-only).
    let out = run_to_end(
        &t,
        &docker,
        "sharer",
        &[
            "--volumes-from",
            "img:ro",
            &bb,
            "sh",
            "-c",
            "cat /data/seed; touch /data/z 2>/dev/null || echo ro",
        ],
    )?;
    ensure!(out == "seeded\nro\n", "volumes-from: {out:?}");
    ensure!(
        mounts_of(&docker, "sharer")? == format!("volume:/data={anon_img}:false"),
        "sharer's mounts: {:?}",
        mounts_of(&docker, "sharer")?
    );
    // --rm takes its anonymous volumes along.
    let before = volume_names(&docker, &[])?;
    let out = docker.ok(&[
        "run",
        "--rm",
        "-v",
        "/gone",
        &bb,
        "sh",
        "-c",
        "echo bye > /gone/x; cat /gone/x",
    ])?;
    ensure!(out == "bye\n", "run --rm: {out:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while volume_names(&docker, &[])? != before {
        ensure!(
            Instant::now() < deadline,
            "--rm left a volume: {:?} vs {before:?}",
            volume_names(&docker, &[])?
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A new named volume over the image's content gets it too; with nocopy it stays empty;
    // --mount makes volumes the same way.
    let out = run_to_end(
        &t,
        &docker,
        "named",
        &["-v", "fresh:/data", &volimg, "cat", "/data/seed"],
    )?;
    ensure!(out == "seeded\n", "named copy-up: {out:?}");
    let out = run_to_end(
        &t,
        &docker,
        "bare",
        &["-v", "bare:/data:nocopy", &volimg, "ls", "-A", "/data"],
    )?;
    ensure!(out.is_empty(), "nocopy: {out:?}");
    let out = run_to_end(
        &t,
        &docker,
        "mnt",
        &[
            "--mount",
            "type=volume,src=mounted,dst=/m",
            &bb,
            "sh",
            "-c",
            "echo m > /m/x; cat /m/x",
        ],
    )?;
    ensure!(out == "m\n", "--mount: {out:?}");
    ensure!(
        mounts_of(&docker, "mnt")? == "volume:/m=mounted:true",
        "mnt's mounts: {:?}",
        mounts_of(&docker, "mnt")?
    );

    // tmpfs: --tmpfs and --mount type=tmpfs, with dockerd's default options.
    let out = run_to_end(
        &t,
        &docker,
        "tmp",
        &[
            "--tmpfs",
            "/scratch:size=1m",
            "--mount",
            "type=tmpfs,dst=/t2,tmpfs-size=2097152",
            &bb,
            "sh",
            "-c",
            "grep -E ' /(scratch|t2) ' /proc/mounts",
        ],
    )?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == 2
            && lines.iter().all(|l| l.starts_with("tmpfs ")
                && l.contains("nosuid")
                && l.contains("nodev")
                && l.contains("noexec"))
            && lines
                .iter()
                .any(|l| l.contains("/scratch") && l.contains("size=1024k"))
            && lines
                .iter()
                .any(|l| l.contains("/t2") && l.contains("size=2048k")),
        "tmpfs mounts: {out:?}"
    );
    docker.ok(&["rm", "tmp"])?;

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
    let ps = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "volume=/x",
        "--format",
        "{{.Names}}",
    ])?;
    ensure!(ps.trim() == "anon", "ps --filter volume=/x: {ps:?}");

    // rm -v: the anonymous volume goes, the named ones stay.
    docker.ok(&["rm", "-v", "anon", "named"])?;
    let all = volume_names(&docker, &[])?;
    ensure!(
        !all.iter().any(|n| n == anon_x) && all.iter().any(|n| n == "fresh"),
        "after rm -v: {all:?}"
    );
    ensure!(!vol_dir.join(anon_x).exists(), "{anon_x} still on disk");
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

    // Remove the containers (without -v: their anonymous volumes stay), then prune all.
    for c in ["writer", "reader", "img", "sharer", "bare", "mnt", "later"] {
        docker.ok(&["rm", c])?;
    }
    let before = volume_names(&docker, &[])?;
    ensure!(
        before.iter().any(|n| n == anon_img),
        "img's volume kept by rm: {before:?}"
    );
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
