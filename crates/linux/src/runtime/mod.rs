//! berth's own OCI runtime: the container init (`berthd init`) and exec entry (`berthd init
//! --exec`), run by the per-pod monitor, plus the cgroup helpers the monitor uses.
//!
//! Entry points (called from berthd's `main` before any thread exists; `args` are the
//! arguments after the `init` subcommand):
//! - [`init_main`]: `init --bundle <dir> --id <container-id>`
//! - [`exec_main`]: `init --exec --pid <container pid> --process <process.json>
//!   [--cgroup <cgroupsPath>] [--bundle <dir>]` (the bundle, when given, supplies the
//!   container's seccomp profile)
//!
//! Contract with the monitor (a PR_SET_CHILD_SUBREAPER process): fds 0/1/2 are the
//! container's stdio, fd 3 the sync socket ([`sync`] describes the messages). A process
//! with `terminal` gets a pty made inside the container instead (its master goes back on
//! fd 3, [`console`]); fds 0/1/2 are then ignored (the monitor passes /dev/null). The init
//! forks once (PID namespaces apply to children); the intermediate parent reports the
//! child's host PID and exits 0, and the monitor inherits the child.

mod cgroup;
mod console;
mod error;
mod exec;
mod init;
mod mount_opts;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod rootfs;
pub mod seccomp;
mod securejoin;
pub mod sync;

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

pub use cgroup::{apply_resources, oom_kill_count, remove_cgroup};
pub use error::InitError;
pub use exec::exec_main;
pub use init::init_main;
pub use securejoin::secure_join;
pub use sync::{SYNC_FD, SyncMessage};

/// Exit code of the init when setup failed (an error message was sent first).
pub const EXIT_SETUP_FAILED: i32 = 1;
/// Exit code when execve failed (an error message was sent first).
pub const EXIT_EXEC_FAILED: i32 = 127;

/// `--name value` from the argument list.
fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Set once this process is a container's init or exec entry, whose stdio is the
/// container's: from then on its notes go over the sync socket, never to stderr.
static IN_INIT: AtomicBool = AtomicBool::new(false);

/// Sends the error on the sync socket and exits. Nothing goes to stderr, which is the
/// container's: when the socket is gone the monitor sees the exit code alone.
fn fail(err: &InitError, code: i32) -> ! {
    let msg = SyncMessage::Error {
        message: err.to_string(),
    };
    let _ = sync::send(SYNC_FD, &msg);
    std::process::exit(code)
}

/// A note (something left out or clamped). In the init it goes over the sync socket to the
/// monitor's log; elsewhere (the monitor applying resources) to stderr, the monitor's log.
pub(crate) fn warn(message: String) {
    if IN_INIT.load(Ordering::Relaxed) {
        let _ = sync::send(SYNC_FD, &SyncMessage::Warning { message });
    } else {
        eprintln!("berth: {message}");
    }
}

/// Marks this process as an init (see [`warn`]). The sync fd closes on execve (so the
/// monitor sees EOF when the program runs); every other inherited fd above it closes too.
fn enter_init() {
    IN_INIT.store(true, Ordering::Relaxed);
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let _ = fcntl(SYNC_FD, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|fd: &RawFd| *fd > SYNC_FD)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}

/// Forks; the parent reports the child's PID on the sync socket and exits 0, the child
/// returns once that report is out (so `pid` always comes before the child's messages).
fn fork_and_report() -> Result<(), InitError> {
    use nix::unistd::{ForkResult, fork, pipe2, read};
    let (rd, wr) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| InitError::new("fork", e))?;
    // SAFETY: the init is single-threaded (it runs before berthd starts any thread), so the
    // child may run arbitrary code.
    match unsafe { fork() }.map_err(|e| InitError::new("fork", e))? {
        ForkResult::Parent { child } => {
            drop(rd);
            let msg = SyncMessage::Pid {
                pid: child.as_raw(),
            };
            if sync::send(SYNC_FD, &msg).is_err() {
                // The monitor is gone: nobody would own the container.
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                std::process::exit(EXIT_SETUP_FAILED);
            }
            drop(wr);
            std::process::exit(0)
        }
        ForkResult::Child => {
            drop(wr);
            let mut b = [0u8; 1];
            use std::os::fd::AsRawFd;
            // EOF once the parent exits (or closed its end after the report).
            while let Err(nix::errno::Errno::EINTR) = read(rd.as_raw_fd(), &mut b) {}
            Ok(())
        }
    }
}
