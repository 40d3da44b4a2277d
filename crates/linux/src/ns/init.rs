//! The pod's init: PID 1 of the pod's PID namespace, living in the pod's net/IPC/UTS
//! namespaces. It only reaps orphans and exits on SIGTERM/SIGINT, like the pause image.
//!
//! [`spawn_init`] runs on a thread that already sits in the pod's namespaces: it unshares
//! a PID namespace for the thread's children and spawns `<exe> pod-init` ([`pod_init_main`]),
//! which is then PID 1 there and a direct child of berthd. No second process waits for it:
//! berthd reaps it (one pidfd reaper for all pods, `reaper.rs`), and after a berthd restart
//! PID 1 of the node (or the nearest subreaper) does, as for any orphan.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_core::pod::ports::PodError;
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, setsid};

/// Entry point of the hidden `pod-init` subcommand, started by [`spawn_init`] as PID 1 of
/// a new PID namespace.
pub fn pod_init_main() -> ! {
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!("pod-init: must run as PID 1 of a new PID namespace (berthd starts it)");
        std::process::exit(2);
    }
    // SIGCHLD and SIGTERM are taken with sigwait. Blocked signals are queued even for a
    // namespace init (which drops signals whose action is the default). One sent before
    // this line is lost, which is harmless: berthd stops an init with SIGKILL.
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("pod-init: sigprocmask: {e}");
        std::process::exit(1);
    }
    // Own session: a terminal's Ctrl-C aimed at berthd's process group must not reach it.
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
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

/// Starts `<exe> pod-init` as PID 1 of a new PID namespace, from the calling thread, which
/// must already be in the pod's other namespaces and must exit afterwards (unshare moves
/// its later children into that namespace too). Returns the init, berthd's own child.
pub(crate) fn spawn_init(exe: &Path) -> Result<Child, PodError> {
    let step = "start pod init";
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| PodError::failed(step, format!("unshare(CLONE_NEWPID): {e}")))?;
    // Spawn returns once the exec succeeded (or with its error), so the PID is the init's.
    Command::new(exe)
        .arg("pod-init")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PodError::failed(step, format!("spawning {} pod-init: {e}", exe.display())))
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
