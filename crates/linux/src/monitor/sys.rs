//! The monitor's system calls: pipes, spawning with fd 3, signals, poll, pidfds.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;

/// The container side and the monitor side of a process's stdio.
pub struct ChildStdio {
    /// fds 0, 1, 2 of the child.
    pub child: [OwnedFd; 3],
    /// Output to log: stdout and stderr pipes.
    pub stdout: OwnedFd,
    pub stderr: Option<OwnedFd>,
    /// Kept open so a container reading stdin blocks instead of seeing EOF.
    pub stdin: Option<OwnedFd>,
}

pub fn set_nonblocking(fd: &impl AsRawFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

pub fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

/// /dev/null as fds 0-2: for a runtime that makes the process' terminal itself.
pub fn null_stdio() -> Result<[OwnedFd; 3], String> {
    let null = || dev_null().map_err(|e| format!("/dev/null: {e}"));
    Ok([null()?, null()?, null()?])
}

/// Pipes for a process's stdio; `stdin` false gives /dev/null. (A terminal is made by the
/// runtime inside the container, which sends its master back.)
pub fn child_stdio(stdin: bool) -> std::io::Result<ChildStdio> {
    let (in_child, in_keep) = if stdin {
        let (r, w) = pipe2(OFlag::O_CLOEXEC)?;
        (r, Some(w))
    } else {
        (dev_null()?, None)
    };
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
    set_nonblocking(&out_r)?;
    set_nonblocking(&err_r)?;
    Ok(ChildStdio {
        child: [in_child, out_w, err_w],
        stdout: out_r,
        stderr: Some(err_r),
        stdin: in_keep,
    })
}

/// Spawns `exe args` with the given fds 0-2 and `fd3` as fd 3; returns its PID. The
/// child is not waited for here: the monitor's reaper collects every child.
pub fn spawn_with_fd3(
    exe: &Path,
    args: &[String],
    stdio: [OwnedFd; 3],
    fd3: &OwnedFd,
) -> std::io::Result<i32> {
    let [i, o, e] = stdio;
    let raw3 = fd3.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir("/")
        .stdin(Stdio::from(i))
        .stdout(Stdio::from(o))
        .stderr(Stdio::from(e));
    // SAFETY: the closure runs in the forked child of this single-threaded process and
    // only calls async-signal-safe functions (fcntl, dup2).
    unsafe {
        cmd.pre_exec(move || {
            if raw3 == 3 {
                // dup2(3, 3) would keep FD_CLOEXEC: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw3, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}

/// Reads what `fd` (non-blocking) has now, at most `limit` bytes. Returns the bytes and
/// whether the stream ended (EOF, or EIO from a pty whose slave side is all closed).
pub fn read_available(fd: &OwnedFd, limit: usize) -> (Vec<u8>, bool) {
    // SAFETY: a File view of a borrowed fd, never closed by us (ManuallyDrop).
    let mut f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while out.len() < limit {
        match f.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return (out, false),
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Sends `sig` to `pid`; a process already gone is not an error.
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) with a positive pid (checked) and a signal number.
    if pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let rc = unsafe { libc::kill(pid, sig) };
    match rc {
        0 => Ok(()),
        _ if Errno::last() == Errno::ESRCH => Ok(()),
        _ => Err(Errno::last()),
    }
}

pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_kill(fd: &OwnedFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: pidfd_send_signal on an fd we own, no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 && Errno::last() != Errno::ESRCH {
        return Err(Errno::last());
    }
    Ok(())
}

/// poll(2) over `fds`; returns the number ready (0 on timeout or EINTR).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, Errno> {
    // SAFETY: the slice is a valid array of pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match n {
        n if n >= 0 => Ok(n as usize),
        _ if Errno::last() == Errno::EINTR => Ok(0),
        _ => Err(Errno::last()),
    }
}

/// Marks every fd from 3 up close-on-exec, so nothing inherited from berthd leaks into
/// containers.
pub fn cloexec_from_3() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc < 0 {
        // Older kernels: walk the open fds instead.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd >= 3)
                .collect();
            for fd in fds {
                // SAFETY: F_SETFD on an fd number; a stale one just fails with EBADF.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
        }
    }
}

/// PR_SET_CHILD_SUBREAPER: orphans of our descendants (containers whose init parent
/// exited) are reparented to us, so we can waitpid them.
pub fn set_subreaper() -> Result<(), Errno> {
    // SAFETY: prctl with an int flag only changes this process's attributes.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Children start with an empty signal mask: the monitor blocks SIGCHLD, SIGTERM, ... for
/// its signalfd, and a mask survives exec (berth's own init clears it itself; runc and crun
/// would pass it on to containers).
pub fn reset_sigmask(cmd: &mut Command) {
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe; the set lives on the
    // child's stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` with the given fds 0-2; returns its PID. Not waited for here: the
/// monitor's reaper collects it.
pub fn spawn(mut cmd: Command, stdio: [OwnedFd; 3]) -> std::io::Result<i32> {
    let [i, o, e] = stdio;
    cmd.stdin(Stdio::from(i))
        .stdout(Stdio::from(o))
        .stderr(Stdio::from(e));
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}

/// Receives one file descriptor sent with SCM_RIGHTS (a console socket's pty master);
/// any extra descriptors in the message are closed.
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    let mut data = [0u8; 4096];
    // u64s: cmsg buffers must be aligned like cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; its pointers are set to live buffers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg into the buffers described by msg, which outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, within
    // msg_controllen; each SCM_RIGHTS payload is an array of ints.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c) as *const RawFd;
                for k in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(k))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if fds.is_empty() {
        return Err(std::io::Error::other("no file descriptor in the message"));
    }
    Ok(fds.swap_remove(0))
}
