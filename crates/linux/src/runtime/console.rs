//! A process' terminal, made as runc makes it: a pty of the container's own devpts (its
//! /dev/ptmx, opened after pivot_root or after entering the mount namespace), so inside the
//! container `tty` names a /dev/pts/N that exists there and /proc/self/fd/0 points at it.
//! The slave becomes fds 0-2 (the controlling terminal is taken later, by
//! [`super::process::session`]); the master goes to the monitor over the sync socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::unistd::{Uid, dup2, fchown};
use oci_spec::runtime::Process;

use super::error::{Result, Step};
use super::sync::{self, SYNC_FD, SyncMessage};

/// Makes the process' terminal and sends its master to the monitor. `console`: the main
/// process, whose terminal is also bound onto /dev/console.
pub fn setup(p: &Process, console: bool) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .step("open the container's /dev/ptmx")?;
    grantpt(&master).step("grantpt")?;
    unlockpt(&master).step("unlockpt")?;
    let path = ptsname_r(&master).step("ptsname")?;
    let slave: OwnedFd = std::fs::File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .step(format!("open {path}"))?
        .into();
    // As runc's fixStdioPermissions: the terminal belongs to the process' user, who may
    // then reopen it by name (its group, tty, comes from devpts' gid=5).
    fchown(slave.as_raw_fd(), Some(Uid::from_raw(p.user().uid())), None)
        .step(format!("chown {path}"))?;
    if let Some(size) = p.console_size() {
        let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
        crate::pty::set_winsize(&master, clamp(size.width()), clamp(size.height()))
            .step("set the terminal size (consoleSize)")?;
    }
    if console {
        bind_console(&path)?;
    }
    for target in 0..3 {
        dup2(slave.as_raw_fd(), target).step(format!("dup {path} to fd {target}"))?;
    }
    drop(slave);
    sync::send_fd(SYNC_FD, &SyncMessage::Console, master.as_raw_fd())
        .step("send the terminal to the monitor")
}

/// /dev/console: the terminal's slave bound onto it (created first where missing), as runc.
fn bind_console(slave: &str) -> Result<()> {
    let dest = Path::new("/dev/console");
    if std::fs::symlink_metadata(dest).is_err() {
        std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dest)
            .step("create /dev/console")?;
    }
    mount(
        Some(slave),
        dest,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step(format!("bind {slave} onto /dev/console"))
}
