//! A pod's user namespace and the namespaces it owns.
//!
//! berthd is multi-threaded, and the kernel lets only a single-threaded process create
//! or join a user namespace. So a forked child creates the user namespace together with
//! the pod's network/IPC/UTS namespaces in one `unshare` (the user namespace is made
//! first, so it owns the others), berthd writes its uid/gid maps from outside (as root
//! of the parent namespace it may map any ids and needs no `setgroups` deny), pins all of
//! them from `/proc/<child>/ns/*` and lets the child exit.
//!
//! Between fork and exit the child only makes async-signal-safe system calls (unshare,
//! read, write, _exit): in a child of a multi-threaded process nothing else is safe.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use berth_core::pod::ports::PodError;
use berth_core::pod::userns::UserNamespace;
use nix::errno::Errno;
use nix::sched::CloneFlags;

/// The namespace holder: a forked child sitting in the new namespaces until released.
pub(crate) struct Holder {
    pid: libc::pid_t,
    /// Closing it lets the child exit.
    release: Option<OwnedFd>,
}

impl Holder {
    /// `/proc/<pid>/ns/<name>` of the holder.
    pub(crate) fn ns_path(&self, name: &str) -> String {
        format!("/proc/{}/ns/{name}", self.pid)
    }
}

impl Holder {
    /// Lets the child exit and reaps it; its exit code.
    fn finish(&mut self) -> i32 {
        self.release.take();
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` outlives the call.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc >= 0 || Errno::last() != Errno::EINTR {
                break;
            }
        }
        self.pid = 0;
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.pid > 0 {
            self.finish();
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), PodError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(PodError::failed("create user namespace", Errno::last()));
    }
    // SAFETY: both fds were just created and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks a child that unshares a user namespace plus `others` (owned by it), writes its
/// maps and returns the holder once everything is in place.
pub(crate) fn create(userns: &UserNamespace, others: CloneFlags) -> Result<Holder, PodError> {
    let step = "create user namespace";
    // ready: child → parent (one byte once unshared; errno as exit code otherwise).
    // release: parent → child (EOF lets it exit).
    let (ready_r, ready_w) = pipe()?;
    let (release_r, release_w) = pipe()?;
    let flags = libc::CLONE_NEWUSER | others.bits();
    let ready_wfd = ready_w.as_raw_fd();
    let release_rfd = release_r.as_raw_fd();
    // The child closes the parent's ends, or it would never see the release EOF.
    let ready_rfd = ready_r.as_raw_fd();
    let release_wfd = release_w.as_raw_fd();
    // SAFETY: the child only calls async-signal-safe functions (unshare, write, read,
    // _exit) on values prepared before the fork, then exits; the parent goes on normally.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(PodError::failed(step, format!("fork: {}", Errno::last())));
    }
    if pid == 0 {
        // SAFETY: see above; raw calls, no allocation, no locks.
        unsafe {
            libc::close(ready_rfd);
            libc::close(release_wfd);
            if libc::unshare(flags) < 0 {
                libc::_exit(*libc::__errno_location());
            }
            let byte = 1u8;
            if libc::write(ready_wfd, (&byte as *const u8).cast(), 1) != 1 {
                libc::_exit(libc::EIO);
            }
            let mut buf = 0u8;
            while libc::read(release_rfd, (&mut buf as *mut u8).cast(), 1) != 0 {
                if *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(release_r);
    let holder = Holder {
        pid,
        release: Some(release_w),
    };
    let mut byte = [0u8; 1];
    let mut ready = File::from(ready_r);
    let got = std::io::Read::read(&mut ready, &mut byte).unwrap_or(0);
    if got != 1 {
        let mut holder = holder;
        let code = holder.finish();
        return Err(PodError::failed(
            step,
            format!(
                "unshare(CLONE_NEWUSER|{others:?}) in a child: {} (user.max_user_namespaces may be 0)",
                Errno::from_raw(code)
            ),
        ));
    }
    write_map(
        holder.pid,
        "uid_map",
        &UserNamespace::map_text(&userns.uids),
    )?;
    write_map(
        holder.pid,
        "gid_map",
        &UserNamespace::map_text(&userns.gids),
    )?;
    Ok(holder)
}

/// The kernel takes a map in one write(2), once.
fn write_map(pid: libc::pid_t, file: &str, text: &str) -> Result<(), PodError> {
    let path = Path::new("/proc").join(pid.to_string()).join(file);
    File::options()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write(text.as_bytes()))
        .map_err(|e| {
            PodError::failed(
                "write user namespace map",
                format!("{} <- {:?}: {e}", path.display(), text.trim()),
            )
        })
        .and_then(|n| {
            if n == text.len() {
                Ok(())
            } else {
                Err(PodError::failed(
                    "write user namespace map",
                    format!("{}: short write", path.display()),
                ))
            }
        })
}
