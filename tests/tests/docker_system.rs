//! berthd's Docker API, the node-wide endpoints driven by the real docker CLIs: `top`,
//! `stats`, `events` (replayed and live, with filters), `container prune`, `system df`,
//! `image prune -a` and `system prune -af`, and the errors of removing an image in use.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::docker::{busybox_env, leak_free, track_pod};
use berth_tests::docker_cli_tests;

docker_cli_tests!(system_walk, cli_28_system, cli_20_system);

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

async fn system_walk(bin: &str) -> Result<()> {
    let (_reg, t, docker, repo) = busybox_env(bin).await?;
    let t0 = format!("{:.3}", unix_now() - 1.0);

    // A live `docker events` follower, filtered to one container, started first.
    let mut follow = Command::new(&docker.bin);
    follow
        .args([
            "events",
            "--filter",
            "container=busy",
            "--format",
            "{{.Action}}",
        ])
        .env("DOCKER_HOST", &docker.host)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follower = follow.spawn().context("docker events")?;
    let lines = follower.stdout.take().context("events stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(lines).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    // The CLI connects in the background: give it a moment before anything happens.
    std::thread::sleep(Duration::from_millis(500));

    docker.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        &repo,
        "sh",
        "-c",
        "sleep 1000 & sleep 1000",
    ])?;
    track_pod(&t, &docker, "busy")?;

    let top = docker.ok(&["top", "busy"])?;
    ensure!(
        top.lines()
            .next()
            .is_some_and(|h| h.contains("PID") && h.contains("CMD")),
        "top header: {top:?}"
    );
    ensure!(
        top.lines().filter(|l| l.ends_with("sleep 1000")).count() == 2,
        "top shows both sleeps: {top:?}"
    );
    let top = docker.ok(&["top", "busy", "-o", "pid,comm"])?;
    ensure!(
        top.contains("COMMAND") && top.contains("sleep"),
        "top -o: {top:?}"
    );

    let stats = docker.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
        "busy",
    ])?;
    let fields: Vec<&str> = stats.trim().split('|').collect();
    ensure!(fields.len() == 4 && fields[0] == "busy", "stats: {stats:?}");
    ensure!(fields[1].ends_with('%'), "stats CPU: {stats:?}");
    ensure!(
        !fields[2].starts_with("0B"),
        "stats memory is read: {stats:?}"
    );
    // busybox sh execs its last command: two sleeps are left.
    ensure!(fields[3].trim() == "2", "stats pids: {stats:?}");

    // ps -s: the writable layer's size and the total with the image.
    let sizes = docker.ok(&["ps", "-s", "--format", "{{.Names}} {{.Size}}"])?;
    ensure!(
        sizes.starts_with("busy ") && sizes.contains("virtual"),
        "ps -s: {sizes:?}"
    );

    // A container that exits, for prune and for the die event.
    docker
        .ok(&["run", "--name", "brief", &repo, "sh", "-c", "exit 3"])
        .ok();
    track_pod(&t, &docker, "brief")?;
    docker.ok(&["kill", "busy"])?;
    docker.ok(&["start", "busy"])?;

    // The follower saw busy's events in order, and nothing of brief's.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.iter().any(|a: &String| a == "start")
        || seen.iter().filter(|a| *a == "start").count() < 2
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(a) => seen.push(a),
            Err(_) => break,
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let want = ["create", "start", "kill", "die", "start"];
    let mut it = seen.iter();
    ensure!(
        want.iter().all(|w| it.any(|a| a == w)),
        "live events {seen:?}, expected in order {want:?}"
    );

    // Replayed: --since/--until with a filter on the event.
    let until = format!("{:.3}", unix_now() + 0.5);
    std::thread::sleep(Duration::from_millis(600));
    let died = docker.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
    ])?;
    ensure!(
        died.lines().any(|l| l == "brief 3") && died.lines().any(|l| l == "busy 137"),
        "die events: {died:?}"
    );
    let bad = docker.fails(&["events", "--filter", "colour=red", "--until", &until])?;
    ensure!(
        bad.contains("invalid filter 'colour'"),
        "bad filter: {bad:?}"
    );

    // system df counts the image as used by two containers, one of them running.
    let df = docker.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ])?;
    ensure!(
        df.lines().any(|l| l == "Images 1 1") && df.lines().any(|l| l == "Containers 2 1"),
        "system df: {df:?}"
    );

    // An image in use is not removed, and prune -a keeps it.
    let err = docker.fails(&["rmi", &repo])?;
    ensure!(
        err.contains("is being used by running container"),
        "rmi in use: {err:?}"
    );
    docker.ok(&["image", "prune", "-af"])?;
    ensure!(
        !docker.ok(&["images", "-q"])?.trim().is_empty(),
        "prune -a kept the image in use"
    );

    // container prune removes only the stopped one.
    let pruned = docker.ok(&["container", "prune", "-f"])?;
    let brief_gone = docker.output(&["inspect", "brief"])?;
    ensure!(
        pruned.contains("Deleted Containers") && !brief_gone.status.success(),
        "container prune: {pruned:?}"
    );
    ensure!(
        docker.ok(&["ps", "-a", "--format", "{{.Names}}"])?.trim() == "busy",
        "busy survives container prune"
    );

    // Everything goes with rm -f and image prune -a.
    docker.ok(&["rm", "-f", "busy"])?;
    let out = docker.ok(&["image", "prune", "-af"])?;
    ensure!(
        out.contains("Total reclaimed space"),
        "image prune: {out:?}"
    );
    ensure!(
        docker.ok(&["images", "-q"])?.trim().is_empty(),
        "images left after image prune -af"
    );
    ensure!(
        docker.ok(&["ps", "-aq"])?.trim().is_empty(),
        "containers left after rm -f"
    );
    leak_free(t).await
}
