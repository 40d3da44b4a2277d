//! The per-pod monitor: `berthd monitor --pod <id> --dir <monitor dir> --exe <berthd>`.
//!
//! One small single-threaded process per pod (no tokio), detached from berthd (double
//! fork + setsid), so berthd can be killed and restarted while containers run on. It is
//! the child subreaper of the pod's containers: it spawns `<exe> init` for each (or has
//! the pod's external OCI runtime, runc or crun, create it: [`oci`]), owns their stdio
//! (CRI log files), reaps them and writes each exit atomically to
//! `<dir>/containers/<id>/exit.json`. berthd talks to it over `<dir>/monitor.sock`
//! ([`protocol`]); the monitor's PID is in `<dir>/monitor.pid`, its own diagnostics in
//! `<dir>/monitor.log`.
//!
//! Streaming sessions pass file descriptors over that socket ([`fdpass`]): a streamed exec
//! gets its stdio from berthd and the monitor only spawns and reaps it (`exec_stream.rs`);
//! attachers pass pipes that the monitor feeds from the container's output and copies into
//! its stdin (`attach.rs`). A session is its connection: when berthd closes it, the exec is
//! killed or the attacher detached.

mod attach;
mod cgroups;
mod channel;
mod container;
mod exec;
mod exec_stream;
pub mod fdpass;
mod init_events;
mod lifecycle;
pub mod log;
mod oci;
mod oci_events;
pub mod protocol;
mod reap;
pub mod records;
mod server;
mod sys;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe2, setsid};

use protocol::{CONTAINERS, LOG_FILE, PID_FILE, SOCKET};

/// What `berthd monitor` is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArgs {
    pub pod: String,
    pub dir: PathBuf,
    pub exe: PathBuf,
}

impl MonitorArgs {
    /// The command line after the executable: `monitor --pod <id> --dir <dir> --exe <exe>`.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "monitor".into(),
            "--pod".into(),
            self.pod.clone(),
            "--dir".into(),
            self.dir.to_string_lossy().into_owned(),
            "--exe".into(),
            self.exe.to_string_lossy().into_owned(),
        ]
    }

    /// Finds the three flags anywhere in `args` (the full argv or only what follows
    /// `monitor`).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
                .ok_or_else(|| format!("missing {flag}"))
        };
        Ok(MonitorArgs {
            pod: value("--pod")?,
            dir: value("--dir")?.into(),
            exe: value("--exe")?.into(),
        })
    }
}

/// Entry point of `berthd monitor`. Must run before any thread exists (it forks).
///
/// The process berthd spawned prints one line on stdout and exits once the monitor is
/// serving: `ready <monitor pid>` (exit 0) or `error <message>` (exit 1).
pub fn monitor_main(args: &[String]) -> ! {
    let args = match MonitorArgs::parse(args) {
        Ok(a) => a,
        Err(e) => report_and_exit(&format!("error {e}")),
    };
    let (ready_r, ready_w) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => report_and_exit(&format!("error pipe: {e}")),
    };
    // SAFETY: no other thread exists (documented precondition).
    match unsafe { fork() } {
        Err(e) => report_and_exit(&format!("error fork: {e}")),
        Ok(ForkResult::Parent { child }) => {
            drop(ready_w);
            let _ = waitpid(child, None);
            let mut answer = String::new();
            let _ = File::from(ready_r).read_to_string(&mut answer);
            if answer.trim().is_empty() {
                answer = "error the monitor exited while starting (see monitor.log)".into();
            }
            report_and_exit(answer.trim())
        }
        Ok(ForkResult::Child) => {}
    }
    drop(ready_r);
    // A new session (no controlling terminal, not in berthd's process group), then a
    // second fork so the monitor is not a session leader and is nobody's child but init's.
    let _ = setsid();
    // SAFETY: still single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {}
        Ok(ForkResult::Parent { .. }) => std::process::exit(0),
        Err(e) => {
            let _ = writeln!(File::from(ready_w), "error fork: {e}");
            std::process::exit(1)
        }
    }
    let mut ready = File::from(ready_w);
    match setup(&args) {
        Ok(Setup::Serve(mut monitor)) => {
            let _ = writeln!(ready, "ready {}", std::process::id());
            drop(ready);
            monitor.run();
            cleanup(&args.dir);
            std::process::exit(0)
        }
        Ok(Setup::AlreadyRunning(pid)) => {
            let _ = writeln!(ready, "ready {pid}");
            std::process::exit(0)
        }
        Err(e) => {
            let _ = writeln!(ready, "error {e}");
            std::process::exit(1)
        }
    }
}

fn report_and_exit(line: &str) -> ! {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    std::process::exit(if line.starts_with("ready") { 0 } else { 1 })
}

enum Setup {
    Serve(Box<server::Monitor>),
    AlreadyRunning(String),
}

fn setup(args: &MonitorArgs) -> Result<Setup, String> {
    let dir = &args.dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join(CONTAINERS))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    redirect_stdio(&dir.join(LOG_FILE))?;
    let _ = std::env::set_current_dir("/");
    sys::cloexec_from_3();
    sys::set_subreaper().map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    let sock = dir.join(SOCKET);
    let addr = crate::sockpath::SockPath::new(&sock)
        .map_err(|e| format!("socket path {}: {e}", sock.display()))?;
    if UnixStream::connect(addr.path()).is_ok() {
        // Another monitor serves this pod (a concurrent start won the race).
        let pid = std::fs::read_to_string(dir.join(PID_FILE)).unwrap_or_default();
        return Ok(Setup::AlreadyRunning(pid.trim().to_string()));
    }
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(addr.path()).map_err(|e| format!("binding {}: {e}", sock.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let mut monitor = server::Monitor::new(dir.clone(), args.exe.clone(), listener, signals);
    monitor.recover();
    let pid_file = dir.join(PID_FILE);
    records::write_json(&pid_file, &std::process::id())
        .map_err(|e| format!("writing {}: {e}", pid_file.display()))?;
    eprintln!(
        "monitor {} for pod {} serving {}",
        std::process::id(),
        args.pod,
        sock.display()
    );
    Ok(Setup::Serve(Box::new(monitor)))
}

/// stdin/stdout to /dev/null, stderr to the monitor's log (appended).
fn redirect_stdio(log: &Path) -> Result<(), String> {
    let null: OwnedFd = sys::dev_null().map_err(|e| format!("/dev/null: {e}"))?;
    let err: OwnedFd = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| format!("opening {}: {e}", log.display()))?
        .into();
    for (from, to) in [(&null, 0), (&null, 1), (&err, 2)] {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn cleanup(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SOCKET));
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    eprintln!("monitor {} exiting", std::process::id());
}
