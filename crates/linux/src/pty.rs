//! A pseudo-terminal's size (TIOCSWINSZ on the master; the kernel then sends SIGWINCH to
//! the terminal's foreground process group). The ptys themselves are made by the runtime
//! inside the container ([`crate::runtime`]'s console, or runc/crun).

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn winsize_reaches_the_slave() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let (master, slave) = (pty.master, pty.slave);
        set_winsize(&master, 90, 30).unwrap();
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills the struct we own.
        assert_eq!(
            unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) },
            0
        );
        assert_eq!((ws.ws_col, ws.ws_row), (90, 30));
        std::fs::File::from(slave.try_clone().unwrap())
            .write_all(b"hi")
            .unwrap();
        let mut buf = [0u8; 2];
        std::fs::File::from(master).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }
}
