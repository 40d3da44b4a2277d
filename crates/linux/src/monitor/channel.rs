//! fd 3 between the monitor and an init process: newline-delimited JSON messages.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

/// init → monitor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InitMsg {
    /// Host PID of the container (or exec) process.
    Pid { pid: i32 },
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
}

/// Messages beyond this without a newline mean a broken peer.
const MAX_MESSAGE: usize = 1 << 20;

impl Channel {
    pub fn new(stream: UnixStream) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Channel {
            stream,
            buf: Vec::new(),
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
            match self.stream.read(&mut chunk) {
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
}
