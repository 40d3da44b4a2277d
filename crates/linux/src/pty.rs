//! Terminal sizes: TIOCSWINSZ on a pty master (the kernel then sends SIGWINCH to the
//! terminal's foreground process group).

use std::os::fd::AsRawFd;

pub fn set_winsize(master: &impl AsRawFd, width: u16, height: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct, which lives across the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
