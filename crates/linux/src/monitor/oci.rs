//! Containers run by an external OCI runtime CLI (runc, crun: a configured CRI runtime
//! handler) instead of `<exe> init`. The monitor stays what it is for berth's own runtime:
//! the subreaper that reaps the container process (`create` leaves it orphaned, so it is
//! reparented to the monitor), the owner of its stdio and CRI log, the writer of its exit
//! record. The CLI only sets things up, with its state under `<monitor dir>/<handler>-root`:
//! `create --pid-file` (stdio passed through; a tty's master comes back over
//! `--console-socket`), `start`, `exec -d --pid-file`, `update --resources`, `delete
//! --force`. Calls that may take a while (create, start, exec) run as children the event
//! loop reaps ([`Helper`]); update and delete run to completion at once.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::records::{self, ContainerRecord};

/// An external runtime's command in flight, keyed by its PID in the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Helper {
    Create(String),
    Start(String),
    Exec(u64),
}

/// How long update and delete may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// The runtime's JSON log (errors of its calls), in the container's state dir.
const LOG_FILE: &str = "oci.log";
/// PID file written by `create`.
pub const PID_FILE: &str = "oci.pid";

/// One container's view of its runtime CLI.
#[derive(Debug, Clone)]
pub struct OciCli {
    bin: PathBuf,
    root: PathBuf,
    log: PathBuf,
}

/// Whether `handler` names an external runtime (anything but berth's own).
pub fn is_external(handler: &str) -> bool {
    !matches!(handler, "" | "berth")
}

impl OciCli {
    pub fn new(monitor_dir: &Path, id: &str, handler: &str, bin: &str) -> Self {
        OciCli {
            bin: bin.into(),
            root: monitor_dir.join(format!("{handler}-root")),
            log: records::container_dir(monitor_dir, id).join(LOG_FILE),
        }
    }

    /// The CLI of a recorded container; None for berth's own runtime.
    pub fn of(monitor_dir: &Path, rec: &ContainerRecord) -> Option<Self> {
        let bin = rec.runtime.as_deref()?;
        Some(Self::new(monitor_dir, &rec.id, &rec.handler, bin))
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"])
            .current_dir("/");
        super::sys::reset_sigmask(&mut cmd);
        cmd
    }

    pub fn create(
        &self,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        id: &str,
    ) -> Command {
        let mut cmd = self.command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(sock) = console {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(id);
        cmd
    }

    pub fn start(&self, id: &str) -> Command {
        let mut cmd = self.command();
        cmd.args(["start", id]);
        cmd
    }

    /// Detached exec: the CLI exits once the process runs, which is then reparented to
    /// the monitor and reaped like the container's process.
    /// With `console`, the process' `terminal` is true: the runtime makes its pty inside
    /// the container and sends the master to that socket.
    pub fn exec(
        &self,
        process_file: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        id: &str,
    ) -> Command {
        let mut cmd = self.command();
        cmd.args(["exec", "--detach"]);
        if let Some(sock) = console {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg("--pid-file")
            .arg(pid_file)
            .arg("--process")
            .arg(process_file)
            .arg(id);
        cmd
    }

    /// `update --resources <file>` with OCI `linux.resources` JSON.
    pub fn update(&self, id: &str, resources: &serde_json::Value) -> Result<(), String> {
        let file = self.log.with_file_name("resources.json");
        records::write_json(&file, resources)
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
        let mut cmd = self.command();
        cmd.args(["update", "--resources"]).arg(&file).arg(id);
        let res = self.run(cmd, "update");
        let _ = std::fs::remove_file(&file);
        res
    }

    /// `pause` (frozen) or `resume` (thawed).
    pub fn freeze(&self, id: &str, frozen: bool) -> Result<(), String> {
        let what = if frozen { "pause" } else { "resume" };
        let mut cmd = self.command();
        cmd.args([what, id]);
        self.run(cmd, what)
    }

    /// `delete --force`: kills what is left and drops the runtime's state and cgroup. A
    /// container the runtime does not know (never created, already deleted) is fine.
    pub fn delete(&self, id: &str) -> Result<(), String> {
        let mut cmd = self.command();
        cmd.args(["delete", "--force", id]);
        match self.run(cmd, "delete") {
            Err(_) if !self.root.join(id).exists() => Ok(()),
            r => r,
        }
    }

    /// Runs `cmd` to its end (bounded); its error is taken from the runtime's log.
    fn run(&self, mut cmd: Command, what: &str) -> Result<(), String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{} {what}: {e}", self.bin.display()))?;
        let deadline = Instant::now() + SYNC_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => return Err(self.failure(what, &st.to_string())),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{} {what}: timed out", self.bin.display()));
                }
                Err(e) => return Err(format!("{} {what}: {e}", self.bin.display())),
            }
        }
    }

    /// "`<bin> <what>`: <last error the runtime logged, or `status`>".
    pub fn failure(&self, what: &str, status: &str) -> String {
        let msg = last_error(&self.log).unwrap_or_else(|| status.to_string());
        format!("{} {what}: {msg}", self.bin.display())
    }
}

/// The message of the last error line of a runc/crun JSON log.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let level = v.get("level")?.as_str()?;
        matches!(level, "error" | "fatal")
            .then(|| v.get("msg")?.as_str().map(str::to_string))
            .flatten()
    })
}

/// Reads the PID a runtime wrote with `--pid-file`.
pub fn read_pid_file(path: &Path) -> Result<i32, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!("{}: not a PID: {text:?}", path.display())),
    }
}

/// berth's specs give `linux.cgroupsPath` relative to the cgroup root (with or without a
/// leading '/'); runc and crun read a relative one as relative to their own cgroup. Makes
/// it absolute in the bundle's config.json (in place: the runtimes read only that file).
pub fn absolute_cgroups_path(bundle: &Path) -> Result<(), String> {
    let file = bundle.join("config.json");
    let text = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    let Some(path) = spec.pointer_mut("/linux/cgroupsPath") else {
        return Ok(());
    };
    let Some(p) = path
        .as_str()
        .filter(|p| !p.is_empty() && !p.starts_with('/'))
    else {
        return Ok(());
    };
    *path = serde_json::Value::String(format!("/{p}"));
    records::write_json(&file, &spec).map_err(|e| format!("writing {}: {e}", file.display()))
}

/// A listening socket for `--console-socket`, at a short path in the monitor dir (a
/// sockaddr_un path has 108 bytes; the container dirs' may be longer).
pub fn console_listener(monitor_dir: &Path, n: u64) -> Result<(UnixListener, PathBuf), String> {
    let path = monitor_dir.join(format!("c{n}.sock"));
    let _ = std::fs::remove_file(&path);
    let addr = crate::sockpath::SockPath::new(&path)
        .map_err(|e| format!("socket path {}: {e}", path.display()))?;
    let l =
        UnixListener::bind(addr.path()).map_err(|e| format!("binding {}: {e}", path.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("console socket: {e}"))?;
    Ok((l, path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn last_error_of_runc_and_crun_logs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("oci.log");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\",\"time\":\"t\"}\n\
             {\"level\":\"error\",\"msg\":\"container_linux.go: starting: exec: \\\"nope\\\" not found\",\"time\":\"t\"}\n\
             {\"msg\":\"later\",\"level\":\"info\"}\n",
        )
        .unwrap();
        assert_eq!(
            last_error(&log).unwrap(),
            "container_linux.go: starting: exec: \"nope\" not found"
        );
        assert_eq!(last_error(&dir.path().join("none")), None);
    }

    #[test]
    fn cgroups_path_made_absolute_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, r#"{"linux":{"cgroupsPath":"berth/pod/c1"},"x":1}"#).unwrap();
        absolute_cgroups_path(dir.path()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/pod/c1");
        assert_eq!(v["x"], 1);
        absolute_cgroups_path(dir.path()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/pod/c1");
    }
}
