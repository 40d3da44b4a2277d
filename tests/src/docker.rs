//! Real Docker API clients for tests: the docker CLIs (28 at /usr/local/bin/docker, which
//! negotiates down to API 1.41; Debian's 20.10 at /usr/bin/docker) and Python SDK scripts
//! (PyPI `docker` 7.x) from tests/fixtures/docker, each aimed at one berthd.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::Berthd;

pub const CLI_28: &str = "/usr/local/bin/docker";
pub const CLI_20: &str = "/usr/bin/docker";

/// A docker CLI aimed at one berthd, with a config dir of its own (no host credentials,
/// contexts or plugins).
pub struct Docker {
    pub bin: PathBuf,
    pub host: String,
    config: tempfile::TempDir,
    /// Extra environment (e.g. `DOCKER_API_VERSION`).
    pub env: Vec<(String, String)>,
}

impl Docker {
    pub fn new(bin: &str, host: String) -> Result<Self> {
        Ok(Self {
            bin: PathBuf::from(bin),
            host,
            config: tempfile::tempdir()?,
            env: Vec::new(),
        })
    }

    pub fn output(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output()
            .with_context(|| format!("run {} {args:?}", self.bin.display()))
    }

    /// Runs with `input` on stdin (a pipe, closed once written).
    pub fn output_stdin(&self, args: &[&str], input: &[u8]) -> Result<Output> {
        use std::io::Write;
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("run {} {args:?}", self.bin.display()))?;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(input)?;
        drop(stdin);
        Ok(child.wait_with_output()?)
    }

    /// The command line (through `env`) that runs this CLI with `args`, for a driver that
    /// execs it (a pseudo-terminal's).
    pub fn command_line(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "env".to_string(),
            format!("DOCKER_HOST={}", self.host),
            format!("DOCKER_CONFIG={}", self.config.path().display()),
            self.bin.display().to_string(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "{} {args:?} failed ({}): stdout {:?} stderr {:?}",
                self.bin.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs and requires exit code 1 (how the CLI reports a daemon's error); returns stderr.
    pub fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(
            out.status.code() == Some(1),
            "{} {args:?}: expected exit code 1, got {} (stdout {:?} stderr {stderr:?})",
            self.bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(stderr)
    }
}

/// `DOCKER_HOST` for a berthd's docker socket.
pub fn unix_host(d: &Berthd) -> String {
    format!("unix://{}", d.docker_socket.display())
}

/// True when `python3` has the Docker SDK 7.x.
pub fn python_sdk_present() -> Result<bool> {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import docker, sys; sys.exit(int(docker.__version__.split('.')[0]) < 7)",
        ])
        .stderr(Stdio::null())
        .status()
        .context("run python3")?;
    Ok(probe.success())
}

/// Runs a script of tests/fixtures/docker with python3; its stdout as JSON.
pub fn run_sdk_script(name: &str, args: &[&str]) -> Result<serde_json::Value> {
    let script = crate::workspace_root()
        .join("tests/fixtures/docker")
        .join(name);
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run python3 {name}"))?;
    ensure!(
        out.status.success(),
        "{name} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("{name} output is not JSON"))
}

/// A `#[tokio::test]` that needs root, a registry, skopeo and `bins`, and runs `body()`:
/// `docker_test!(name, body, [bins])`. It prints SKIP and passes where one is missing.
#[macro_export]
macro_rules! docker_test {
    ($name:ident, $body:ident, $bins:expr) => {
        #[tokio::test]
        async fn $name() {
            let mut bins = vec!["docker-registry", "skopeo"];
            bins.extend_from_slice(&$bins);
            if $crate::skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            $crate::finish($body().await);
        }
    };
}

/// The same walkthrough with each docker CLI: `docker_cli_tests!(walk, cli_28_x, cli_20_x)`
/// makes the tests `cli_28_x` and `cli_20_x`, running `walk(CLI_28)` and `walk(CLI_20)`.
#[macro_export]
macro_rules! docker_cli_tests {
    ($walk:ident, $t28:ident, $t20:ident) => {
        $crate::docker_cli_tests!(@one $walk, $t28, $crate::docker::CLI_28);
        $crate::docker_cli_tests!(@one $walk, $t20, $crate::docker::CLI_20);
    };
    (@one $walk:ident, $name:ident, $bin:expr) => {
        #[tokio::test]
        async fn $name() {
            let bins = ["docker-registry", "skopeo", $bin];
            if $crate::skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            $crate::finish($walk($bin).await);
        }
    };
}

/// The pod behind a Docker container, tracked by `t`'s leak checks; its id.
pub fn track_pod(t: &crate::pods::PodTest, docker: &Docker, name: &str) -> Result<String> {
    let pod = docker.ok(&["inspect", "-f", "{{.NetworkSettings.SandboxID}}", name])?;
    let pod = pod.trim().to_string();
    ensure!(pod.len() == 64, "pod id of {name}: {pod:?}");
    t.track(&pod);
    Ok(pod)
}

/// Checks that nothing of `t`'s pods is left, while berthd runs and after it stopped, and
/// that leakcheck.sh (where present) finds nothing.
pub async fn leak_free(mut t: crate::pods::PodTest) -> Result<()> {
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

/// GET / on 127.0.0.1:port, retried while the server comes up; the whole answer.
pub fn http_get(port: u16) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(text) if text.starts_with("HTTP/") => return Ok(text),
            _ if Instant::now() > deadline => bail!("GET 127.0.0.1:{port}/: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What most Docker API tests start from: a registry serving the busybox test image as
/// `busybox:latest`, a berthd with pod leak tracking, a CLI (`bin`) aimed at it, and the
/// image's repository name (`host:port/busybox`).
pub async fn busybox_env(
    bin: &str,
) -> Result<(crate::Registry, crate::pods::PodTest, Docker, String)> {
    let reg = crate::Registry::start()?;
    reg.push_as(
        &crate::images::build(crate::TestImage::Busybox)?,
        "busybox",
        "latest",
    )?;
    let t = crate::pods::PodTest::start().await?;
    let docker = Docker::new(bin, unix_host(&t.d))?;
    let repo = format!("{}/busybox", reg.host);
    Ok((reg, t, docker, repo))
}
