//! Helpers for docker tests that run containers to their end: the output of a detached
//! container once it exited, and the closing check that a test left nothing behind.

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
