//! fd 3 between the monitor and an init process: newline-delimited JSON messages; a
//! terminal's master comes along with its `console` message (SCM_RIGHTS).

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

/// init → monitor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InitMsg {
    /// Host PID of the container (or exec) process.
    Pid { pid: i32 },
    /// The process' pty master (made in the container) came with this message: take it
    /// with [`Channel::take_fd`].
    Console,
    /// The container is set up and waits for `start`.
    Ready,
    Error {
        #[serde(default)]
        message: String,
    },
    /// A note from the init (a capability left out, a clamped value): the monitor's log.
    Warning {
        #[serde(default)]
        message: String,
    },
    #[serde(other)]
    Unknown,
}

/// monitor → init.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorMsg {
    Start,
}

#[derive(Debug)]
pub struct Channel {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Descriptors received, in order; each belongs to a `console` message.
    fds: VecDeque<OwnedFd>,
}

/// Messages beyond this without a newline mean a broken peer.
const MAX_MESSAGE: usize = 1 << 20;

impl Channel {
    pub fn new(stream: UnixStream) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Channel {
            stream,
            buf: Vec::new(),
            fds: VecDeque::new(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Reads what is there; returns the complete messages and whether the peer closed its
    /// end (on exec, for the container's start).
    pub fn read(&mut self) -> (Vec<InitMsg>, bool) {
        let mut eof = false;
        let mut chunk = [0u8; 4096];
        loop {
            let mut fds = Vec::new();
            let read = super::fdpass::recv(&self.stream, &mut chunk, &mut fds);
            self.fds.extend(fds);
            match read {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
            if self.buf.len() > MAX_MESSAGE {
                eof = true;
                break;
            }
        }
        let mut msgs = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            msgs.push(
                serde_json::from_slice(line).unwrap_or_else(|e| InitMsg::Error {
                    message: format!(
                        "unreadable message from init ({e}): {}",
                        String::from_utf8_lossy(line)
                    ),
                }),
            );
        }
        (msgs, eof)
    }

    /// The descriptor of the oldest `console` message not yet served. A message sent
    /// with its descriptor has it here once the message itself was read.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    pub fn send(&mut self, msg: &MonitorMsg) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // A few bytes into an empty socket buffer: a non-blocking write takes them whole.
        self.stream.write_all(&line)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_eof() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut ch = Channel::new(a).unwrap();
        b.write_all(b"{\"type\":\"pid\",\"pid\":42}\n{\"type\":\"rea")
            .unwrap();
        let (m, eof) = ch.read();
        assert_eq!(m, vec![InitMsg::Pid { pid: 42 }]);
        assert!(!eof);
        b.write_all(b"dy\"}\n{\"type\":\"what\"}\n").unwrap();
        drop(b);
        let (m, eof) = ch.read();
        assert_eq!(m, vec![InitMsg::Ready, InitMsg::Unknown]);
        assert!(eof);
    }

    #[test]
    fn console_brings_its_fd() {
        use std::os::fd::AsRawFd;
        let (a, b) = UnixStream::pair().unwrap();
        let mut ch = Channel::new(a).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        super::super::fdpass::send(&b, b"{\"type\":\"console\"}\n", &[w.as_raw_fd()]).unwrap();
        drop(w);
        let (m, eof) = ch.read();
        assert_eq!(m, vec![InitMsg::Console]);
        assert!(!eof);
        std::fs::File::from(ch.take_fd().unwrap())
            .write_all(b"x")
            .unwrap();
        assert!(ch.take_fd().is_none());
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut s).unwrap();
        assert_eq!(s, "x");
    }
}
