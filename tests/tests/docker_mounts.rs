//! How berthd's Docker containers get their mounts, driven by the docker CLIs (28 and
//! Debian's 20.10): anonymous volumes (`-v /x`, an image's VOLUME) with the image's content
//! copied up, named volumes made on first use (copy-up, `nocopy`), `--mount`, tmpfs,
//! `--volumes-from`, `rm -v` and `--rm`, and nothing left behind.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_tests::docker::leak_free;
use berth_tests::docker::{Docker, unix_host};
use berth_tests::docker_cli_tests;
use berth_tests::docker_runs::{mounts_of, run_to_end, volume_names};
use berth_tests::pods::PodTest;
use berth_tests::{Registry, TestImage, images};
fn is_anonymous_name(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

docker_cli_tests!(walkthrough, cli_28_mounts, cli_20_mounts);

async fn walkthrough(bin: &str) -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    reg.push_as(&images::build(TestImage::Volume)?, "volimg", "latest")?;
    let t = PodTest::start().await?;
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let bb = format!("{}/busybox", reg.host);
    let volimg = format!("{}/volimg", reg.host);
    docker.ok(&["pull", "-q", &bb])?;
    docker.ok(&["pull", "-q", &volimg])?;
    let vol_dir = t.root_dir.join("volumes");

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

    // The rest, removed without -v (img's anonymous volume stays), then pruned.
    for c in ["img", "sharer", "bare", "mnt"] {
        docker.ok(&["rm", c])?;
    }
    let before = volume_names(&docker, &[])?;
    ensure!(
        before.iter().any(|n| n == anon_img),
        "img's volume kept by rm: {before:?}"
    );
    docker.ok(&["volume", "prune", "-f"])?;
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
