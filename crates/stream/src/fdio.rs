//! A session's stdio descriptors, read and written without blocking the runtime.
//!
//! They are pipes or pty masters. tokio's pipe types refuse a pty master (not a FIFO), so
//! both go through `AsyncFd` with O_NONBLOCK set. A pty master reads EIO once the last
//! slave is closed: that is its end of file.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::unix::AsyncFd;

pub struct FdIo {
    inner: AsyncFd<OwnedFd>,
}

impl FdIo {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        // `AsyncFd::new` is deprecated for inner types whose descriptor could change or be
        // closed behind the registration; an `OwnedFd` owned by the `AsyncFd` cannot, which
        // is exactly the contract `register` asks for (without `unsafe` outside crates/linux).
        #[allow(deprecated)]
        let inner = AsyncFd::new(fd)?;
        Ok(FdIo { inner })
    }

    /// Reads some bytes; 0 is the end of the stream.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.inner.readable().await?;
            let res = guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), buf).map_err(io::Error::from)
            });
            match res {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(Errno::EIO as i32) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut guard = self.inner.writable().await?;
            let res =
                guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(io::Error::from));
            match res {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pipe_round_trip_and_eof() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let r = FdIo::new(r).expect("reader");
        let w = FdIo::new(w).expect("writer");
        w.write_all(b"hello").await.expect("write");
        drop(w);
        let mut buf = [0u8; 16];
        let n = r.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(r.read(&mut buf).await.expect("eof"), 0);
    }

    #[tokio::test]
    async fn pty_master_reads_eio_as_eof() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let master = FdIo::new(pty.master).expect("master");
        nix::unistd::write(&pty.slave, b"hi\n").expect("write slave");
        drop(pty.slave);
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = master.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"hi"), "{got:?}");
    }
}
