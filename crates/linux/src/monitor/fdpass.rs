//! File descriptors over the monitor socket (SCM_RIGHTS): berthd sends a streamed exec's
//! or an attacher's stdio along with its request line, so the bytes never pass through the
//! monitor (exec) or only once (attach).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Most descriptors a request carries (exec: 3).
pub const MAX_FDS: usize = 3;

/// Sends `data` (at least its first byte) with `fds` attached; returns the bytes sent.
pub fn send(sock: &impl AsRawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let iov = [IoSlice::new(data)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(std::io::Error::from)
}

/// Reads into `buf`; descriptors that came along are appended to `fds` (close-on-exec).
/// More than [`MAX_FDS`] in one message, or a truncated control message, is an error
/// (the received ones are closed).
pub fn recv(sock: &impl AsRawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut got = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS gave us new descriptors that nothing else owns.
            got.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) || fds.len() + got.len() > MAX_FDS {
        return Err(std::io::Error::other(
            "too many file descriptors sent with one request",
        ));
    }
    let n = msg.bytes;
    fds.extend(got);
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn fds_travel_with_the_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(
            send(&a, b"hello\n", &[w.as_raw_fd(), w.as_raw_fd()]).unwrap(),
            6
        );
        drop(w);
        let mut fds = Vec::new();
        let mut buf = [0u8; 64];
        let n = recv(&b, &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        assert_eq!(fds.len(), 2);
        std::fs::File::from(fds.remove(0)).write_all(b"x").unwrap();
        drop(fds);
        let mut s = String::new();
        std::fs::File::from(r).read_to_string(&mut s).unwrap();
        assert_eq!(s, "x");
        let too_many = [b.as_raw_fd(); 4];
        send(&a, b"y", &too_many).unwrap();
        assert!(recv(&b, &mut buf, &mut Vec::new()).is_err());
    }
}
