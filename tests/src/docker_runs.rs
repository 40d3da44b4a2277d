//! Helpers for docker tests that run containers to their end: the output of a detached
//! container once it exited, waiting for an exit, and the volumes and mounts a docker CLI
//! shows.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use crate::docker::{Docker, track_pod};
use crate::pods::PodTest;

/// Waits until the container exited; its logs (stdout, then stderr).
pub fn output_of(docker: &Docker, name: &str) -> Result<String> {
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

/// `docker run -d --name NAME ARGS…`, tracked for `t`'s leak checks; the container's output
/// once it exited.
pub fn run_to_end(t: &PodTest, docker: &Docker, name: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    docker.ok(&all)?;
    track_pod(t, docker, name)?;
    output_of(docker, name)
}

/// Waits until `docker inspect` shows the container exited.
pub fn wait_exited(docker: &Docker, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", name])?;
        if st.trim() == "exited" {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{name} did not exit: {st:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn volume_names(docker: &Docker, extra: &[&str]) -> Result<Vec<String>> {
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

/// A container's mounts as "type:destination=name:rw …".
pub fn mounts_of(docker: &Docker, name: &str) -> Result<String> {
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
