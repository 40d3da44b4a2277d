//! The fd-3 sync protocol between the monitor and `berthd init`: one JSON object per line
//! on an AF_UNIX SOCK_STREAM socket.
//!
//! init → monitor: `{"type":"pid","pid":N}` (host PID of the container process, sent by
//! the intermediate parent once it forked); with a terminal, `{"type":"console"}` carrying
//! the pty master (SCM_RIGHTS, attached to the line's first byte; the pty was made in the
//! container's own devpts, as runc does); then `{"type":"ready"}` when the process is set
//! up and waits, or `{"type":"error","message":"<step>: <detail>"}`. Any time before
//! that, `{"type":"warning","message":"..."}` for the monitor's log.
//! monitor → init: `{"type":"start"}`. On a successful execve the socket (CLOEXEC) is
//! closed by the kernel, so the monitor sees EOF; on failure an error message comes first.

use std::os::fd::{BorrowedFd, RawFd};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// The fd the monitor hands over as the sync socket.
pub const SYNC_FD: RawFd = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncMessage {
    Pid {
        pid: i32,
    },
    /// The pty master travels with this message.
    Console,
    Ready,
    Start,
    Error {
        message: String,
    },
    /// Something the init left out or clamped, for the monitor's log: the init never
    /// writes to fds the workload inherits (its stdout/stderr are the container's).
    Warning {
        message: String,
    },
}

impl SyncMessage {
    /// The message as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        line.push('\n');
        line
    }

    /// Parses one line (without or with its newline).
    pub fn from_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line.trim())
    }
}

fn fd_of(raw: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the sync fd is owned by this process for its whole life (until execve closes
    // it); nothing here closes it.
    unsafe { BorrowedFd::borrow_raw(raw) }
}

/// Writes `msg` to `raw` completely (retrying on EINTR and short writes).
pub fn send(raw: RawFd, msg: &SyncMessage) -> Result<(), Errno> {
    let line = msg.to_line();
    let mut buf = line.as_bytes();
    while !buf.is_empty() {
        match nix::unistd::write(fd_of(raw), buf) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `msg` to `raw` with `fd` attached to its first byte (SCM_RIGHTS).
pub fn send_fd(raw: RawFd, msg: &SyncMessage, fd: RawFd) -> Result<(), Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let line = msg.to_line();
    let fds = [fd];
    let n = loop {
        let iov = [std::io::IoSlice::new(line.as_bytes())];
        let cmsgs = [ControlMessage::ScmRights(&fds)];
        match sendmsg::<()>(raw, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => break n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    };
    let mut buf = &line.as_bytes()[n..];
    while !buf.is_empty() {
        match nix::unistd::write(fd_of(raw), buf) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one line from `raw`, a byte at a time so nothing after it is consumed.
/// None on EOF before a full line.
pub fn recv(raw: RawFd) -> Result<Option<SyncMessage>, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(raw, &mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("reading the sync socket: {e}")),
        }
        if line.len() > 1 << 20 {
            return Err("sync message longer than 1 MiB".into());
        }
    }
    let text = String::from_utf8_lossy(&line);
    SyncMessage::from_line(&text)
        .map(Some)
        .map_err(|e| format!("bad sync message {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            SyncMessage::Pid { pid: 42 }.to_line(),
            "{\"type\":\"pid\",\"pid\":42}\n"
        );
        assert_eq!(SyncMessage::Ready.to_line(), "{\"type\":\"ready\"}\n");
        assert_eq!(SyncMessage::Console.to_line(), "{\"type\":\"console\"}\n");
        assert_eq!(
            SyncMessage::from_line("{\"type\":\"start\"}\n").unwrap(),
            SyncMessage::Start
        );
        assert_eq!(
            SyncMessage::Error {
                message: "x: y".into()
            }
            .to_line(),
            "{\"type\":\"error\",\"message\":\"x: y\"}\n"
        );
    }
}
