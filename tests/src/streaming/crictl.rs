//! crictl 1.32 from `../shared/tools/cri-rig/bin` (the reference CRI client), pointed at one
//! berthd.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The rig's crictl, when the rig is there.
pub fn path() -> Option<PathBuf> {
    // BERTH_CRICTL overrides: from a git worktree the relative path does not reach the rig.
    let p = match std::env::var_os("BERTH_CRICTL") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::workspace_root().join("../shared/tools/cri-rig/bin/crictl"),
    };
    p.is_file().then_some(p)
}

pub struct Crictl {
    bin: PathBuf,
    endpoint: String,
}

impl Crictl {
    pub fn new(bin: PathBuf, socket: &Path) -> Self {
        Self {
            bin,
            endpoint: format!("unix://{}", socket.display()),
        }
    }

    /// The command line prefix: crictl with this endpoint.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            self.bin.display().to_string(),
            "--runtime-endpoint".into(),
            self.endpoint.clone(),
            "--image-endpoint".into(),
            self.endpoint.clone(),
            "--timeout".into(),
            "30s".into(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let argv = self.argv(args);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    /// Runs crictl with `stdin` as its input; waits at most `timeout`.
    pub fn run(&self, args: &[&str], stdin: &[u8], timeout: Duration) -> Result<Output> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn crictl")?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin).context("crictl stdin")?;
        }
        wait_output(child, timeout, &format!("crictl {}", args.join(" ")))
    }

    /// Starts crictl in the background (stdout/stderr piped, stdin null).
    pub fn spawn(&self, args: &[&str]) -> Result<Child> {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn crictl")
    }
}

/// Waits for `child` (killing it after `timeout`) and collects its output.
pub fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Result<Output> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output().with_context(|| what.to_string());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "{what}: still running after {timeout:?}; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
