//! The pod's init: PID 1 of the pod's PID namespace, living in the pod's net/IPC/UTS
//! namespaces. It only reaps orphans and exits on SIGTERM/SIGINT, like the pause image.
//!
//! `berthd pod-init` (calling [`pod_init_main`]) is spawned from a thread that already sits
//! in the pod's namespaces, so it inherits them. It unshares a PID namespace and forks: the
//! child is PID 1 there; the parent prints `pid <host pid>` on stdout and stays to wait for
//! it (so the init always has a reaper), exiting with its status.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_core::pod::ports::PodError;
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setsid};

/// Entry point of the hidden `pod-init` subcommand. Call it before any thread exists (no
/// tokio runtime yet): it forks.
pub fn pod_init_main() -> ! {
    let mut out = std::io::stdout();
    let fail = |out: &mut std::io::Stdout, what: &str, e: Errno| -> ! {
        let _ = writeln!(out, "error {what}: {e}");
        let _ = out.flush();
        std::process::exit(1)
    };
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        fail(&mut out, "unshare(CLONE_NEWPID)", e);
    }
    // Blocked before the fork so the init never misses a SIGCHLD or SIGTERM; it takes them
    // with sigwait. Blocked signals are queued even for a namespace init (which drops
    // signals from outside it when their action is the default).
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    let mut old = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)) {
        fail(&mut out, "sigprocmask", e);
    }
    // SAFETY: pod-init runs before berthd starts any thread, so the child may do anything.
    match unsafe { fork() } {
        Err(e) => fail(&mut out, "fork", e),
        Ok(ForkResult::Child) => init_loop(&set),
        Ok(ForkResult::Parent { child }) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let _ = writeln!(out, "pid {child}");
            let _ = out.flush();
            std::process::exit(wait_exit_code(child))
        }
    }
}

fn wait_exit_code(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}

fn init_loop(set: &SigSet) -> ! {
    // Own session: a terminal's Ctrl-C aimed at berthd's process group must not reach it.
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
    // A parent that dies takes the init with it, so a half-started init never lingers.
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on the calling process.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => std::process::exit(0),
            Ok(Signal::SIGCHLD) => reap_all(),
            _ => {}
        }
    }
}

/// Zombie reaping: every orphan of the namespace ends up as our child.
fn reap_all() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Starts `<exe> pod-init` from the calling thread, which must already be in the pod's
/// namespaces. Returns the init's host PID and the intermediate parent (to be reaped).
pub(crate) fn spawn_init(exe: &Path) -> Result<(i32, Child), PodError> {
    let step = "start pod init";
    let mut child = Command::new(exe)
        .arg("pod-init")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PodError::failed(step, format!("spawning {}: {e}", exe.display())))?;
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => BufReader::new(out).read_line(&mut line),
        None => Ok(0),
    };
    let pid = line
        .trim()
        .strip_prefix("pid ")
        .and_then(|p| p.parse::<i32>().ok());
    match pid {
        Some(pid) if pid > 0 => Ok((pid, child)),
        _ => {
            let _ = child.kill();
            let status = child.wait();
            let why = match (read, line.trim()) {
                (Err(e), _) => format!("reading its output: {e}"),
                (Ok(_), l) if !l.is_empty() => l.to_string(),
                _ => format!("it exited ({status:?}) without reporting a PID"),
            };
            Err(PodError::failed(
                step,
                format!("{} pod-init: {why}", exe.display()),
            ))
        }
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot) and whether the
/// process is a zombie; None when there is no such process.
pub(crate) fn stat_of(pid: i32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((start, zombie))
}

pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat_of(pid).map(|(s, _)| s)
}

/// Whether `pid` is still the same live process started at `start`.
pub(crate) fn alive(pid: i32, start: u64) -> bool {
    matches!(stat_of(pid), Some((s, false)) if s == start)
}

/// SIGKILLs the init (which takes its whole PID namespace with it) and waits until it is
/// gone. A PID that now belongs to another process is left alone.
pub(crate) fn kill_init(pid: i32, start: u64) -> Result<(), PodError> {
    let step = "stop pod init";
    // pidfd first, identity check second: the fd pins the process we checked, so the
    // signal cannot hit a recycled PID.
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return match Errno::last() {
            Errno::ESRCH => Ok(()),
            e => Err(PodError::failed(step, format!("pidfd_open({pid}): {e}"))),
        };
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !alive(pid, start) {
        return Ok(());
    }
    // SAFETY: pidfd_send_signal on an fd we own, no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 && Errno::last() != Errno::ESRCH {
        return Err(PodError::failed(
            step,
            format!("killing pod init {pid}: {}", Errno::last()),
        ));
    }
    // A pidfd polls readable once the process has exited; a namespace init exits only
    // after every other process of its namespace is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 || !alive(pid, start) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PodError::failed(
                step,
                format!("pod init {pid} did not exit within 10s of SIGKILL"),
            ));
        }
    }
}
