//! Attach (CRI Attach, `docker attach`): clients joining a running container's own stdio,
//! which the monitor holds. Each attacher passed pipes with its request
//! ([`super::fdpass`]): the container's output is fanned out to their write ends (besides
//! the CRI log; with a tty everything is stdout), and what they write on their stdin pipe
//! is copied to the container's stdin (pipe, or the pty master).
//!
//! Output never waits for an attacher: its pipes are non-blocking and enlarged, and a chunk
//! that does not fit is dropped for that attacher only (noted in the monitor's log). Input
//! is flow-controlled: attachers' stdin is not read while the container's stdin holds
//! bytes it has not taken yet. With `stdin_once`, the first attacher's stdin ending (EOF or
//! detach) closes the container's stdin, as CRI and Docker define it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::container::{Container, Phase};
use super::log::Stream;
use super::protocol::{ErrorKind, Response};
use super::server::{Monitor, Token};
use super::sys;

/// Attachers' output pipes are enlarged to this, so bursts survive a slow reader.
const PIPE_SIZE: i32 = 1 << 20;
/// Read from an attacher's stdin per wake-up.
const STDIN_CHUNK: usize = 64 * 1024;

pub struct Attacher {
    pub client: u64,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Output is being dropped (logged once per run of drops).
    dropping: bool,
}

/// Stdin shared by a container's attachers.
#[derive(Default)]
pub struct StdinState {
    /// Bytes read from attachers that the container has not taken yet.
    pub buf: Vec<u8>,
    /// stdin_once fired: close the container's stdin once `buf` is written.
    pub closing: bool,
}

/// Writes `data` to a non-blocking fd; returns whether all of it fit and whether the
/// reader is gone.
fn write_some(fd: &OwnedFd, data: &[u8]) -> (usize, bool) {
    let mut done = 0;
    while done < data.len() {
        match nix::unistd::write(fd, &data[done..]) {
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return (done, false),
            Err(_) => return (done, true),
        }
    }
    (done, false)
}

/// Copies a chunk of the container's output to every attacher of that stream.
pub fn fan_out(attachers: &mut [Attacher], id: &str, stream: Stream, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    for a in attachers {
        let fd = match stream {
            Stream::Stdout => &mut a.stdout,
            Stream::Stderr => &mut a.stderr,
        };
        let Some(f) = fd.as_ref() else {
            continue;
        };
        let (n, gone) = write_some(f, data);
        if gone {
            *fd = None;
        } else if n < data.len() {
            if !a.dropping {
                eprintln!(
                    "monitor: container {id}: attacher {} reads too slowly; dropping output",
                    a.client
                );
            }
            a.dropping = true;
        } else {
            a.dropping = false;
        }
    }
}

impl Container {
    /// The attachers' stdin (while the container's stdin can take more) and the
    /// container's stdin (while it has bytes waiting).
    pub fn attach_poll_set(&self, id: &str, add: &mut dyn FnMut(BorrowedFd<'_>, i16, Token)) {
        let Some(stdin) = &self.stdin else {
            return;
        };
        if !self.stdin_state.buf.is_empty() {
            return add(stdin.as_fd(), libc::POLLOUT, Token::ContainerIn(id.into()));
        }
        for a in &self.attachers {
            if let Some(f) = &a.stdin {
                add(
                    f.as_fd(),
                    libc::POLLIN,
                    Token::AttachIn(id.into(), a.client),
                );
            }
        }
    }

    /// Writes what attachers sent; closes the container's stdin when stdin_once fired.
    fn flush_stdin(&mut self) {
        let st = &mut self.stdin_state;
        if let Some(f) = &self.stdin
            && !st.buf.is_empty()
        {
            let (n, gone) = write_some(f, &st.buf);
            st.buf.drain(..n);
            if gone {
                // The container closed its stdin: nobody will read the rest.
                st.buf.clear();
                self.stdin = None;
            }
        }
        if st.closing && st.buf.is_empty() {
            self.stdin = None;
        }
        if self.stdin.is_none() {
            st.buf.clear();
            for a in &mut self.attachers {
                a.stdin = None;
            }
        }
    }

    /// An attacher's stdin ended (EOF or detach).
    fn attacher_stdin_ended(&mut self) {
        if !self.rec.stdio.stdin_once || self.stdin_state.closing {
            return;
        }
        self.stdin_state.closing = true;
        if self.rec.stdio.tty {
            // A terminal has no EOF of its own: VEOF (^D) ends a canonical-mode read.
            self.stdin_state.buf.push(0x04);
        }
        self.flush_stdin();
    }
}

impl Monitor {
    /// `want`: stdin, stdout, stderr; `fds`: one per stream wanted, in that order.
    pub fn attach(
        &mut self,
        client: u64,
        id: &str,
        want: [bool; 3],
        fds: Vec<OwnedFd>,
    ) -> Option<Response> {
        let wanted = want.iter().filter(|w| **w).count();
        if fds.len() != wanted {
            return Some(Response::error(
                ErrorKind::InvalidArgument,
                format!(
                    "attach needs one file descriptor per stream asked for ({wanted}), got {}",
                    fds.len()
                ),
            ));
        }
        let Some(c) = self.containers.get_mut(id) else {
            return Some(Response::not_found(id));
        };
        let refuse = |m: &str| Some(Response::error(ErrorKind::FailedPrecondition, m));
        // From creation on (Docker attaches before it starts a container, so nothing of its
        // output is missed); the CRI asks for a running one and checks that itself.
        let joinable = matches!(c.phase, Phase::Created | Phase::Starting | Phase::Running);
        if !(joinable && c.alive()) {
            return refuse("is not running; cannot attach");
        }
        if c.pidfd.is_some() {
            return refuse("its stdio was lost when the pod monitor restarted; cannot attach");
        }
        if want[0] && !c.rec.stdio.stdin {
            return refuse("was not created with stdin (stdin: true); cannot attach stdin");
        }
        let mut fds = fds.into_iter();
        let mut next = |w: bool| if w { fds.next() } else { None };
        let mut a = Attacher {
            client,
            stdin: next(want[0]),
            stdout: next(want[1]),
            stderr: next(want[2]),
            dropping: false,
        };
        for f in [&a.stdin, &a.stdout, &a.stderr].into_iter().flatten() {
            if let Err(e) = sys::set_nonblocking(f) {
                return Some(Response::error(ErrorKind::Failed, format!("attach: {e}")));
            }
        }
        for f in [&a.stdout, &a.stderr].into_iter().flatten() {
            // Best effort: a smaller pipe only means drops come sooner.
            let _ = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::F_SETPIPE_SZ(PIPE_SIZE));
        }
        if c.rec.stdio.tty {
            // All of a terminal's output is on stdout.
            a.stderr = None;
        }
        match &c.stdin {
            // The container's stdin was closed (stdin_once): this attacher's input goes
            // nowhere, and its writer sees EPIPE.
            None => a.stdin = None,
            Some(f) => {
                if let Err(e) = sys::set_nonblocking(f) {
                    return Some(Response::error(ErrorKind::Failed, format!("attach: {e}")));
                }
            }
        }
        c.attachers.push(a);
        self.reply_streaming(client, &Response::ok());
        None
    }

    pub fn attach_stdin_event(&mut self, id: &str, client: u64) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Some(a) = c.attachers.iter_mut().find(|a| a.client == client) else {
            return;
        };
        let Some(f) = &a.stdin else {
            return;
        };
        let (data, eof) = sys::read_available(f, STDIN_CHUNK);
        if eof {
            a.stdin = None;
        }
        c.stdin_state.buf.extend_from_slice(&data);
        c.flush_stdin();
        if eof {
            c.attacher_stdin_ended();
        }
    }

    pub fn container_stdin_event(&mut self, id: &str) {
        if let Some(c) = self.containers.get_mut(id) {
            c.flush_stdin();
        }
    }

    /// A client's connection closed: it is detached from every container.
    pub fn attach_client_gone(&mut self, client: u64) {
        for c in self.containers.values_mut() {
            let Some(i) = c.attachers.iter().position(|a| a.client == client) else {
                continue;
            };
            let a = c.attachers.remove(i);
            if a.stdin.is_some() {
                c.attacher_stdin_ended();
            }
        }
    }

    /// The container exited (its output pumped): every attacher is told and its pipes
    /// closed, which gives the client EOF after the last bytes.
    pub fn attach_exited(&mut self, id: &str, code: i32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.stdin_state = StdinState::default();
        if !c.attachers.is_empty() {
            // What the container wrote last reaches them before their pipes close (bounded:
            // a descendant still writing must not hold the loop).
            for stream in [Stream::Stdout, Stream::Stderr] {
                for _ in 0..64 {
                    if !c.pump(stream) {
                        break;
                    }
                }
            }
        }
        let clients: Vec<u64> = c.attachers.drain(..).map(|a| a.client).collect();
        for client in clients {
            self.reply(client, &Response::exited(code), &[]);
        }
    }

    /// The container is being forgotten: its attachers' connections are closed (a
    /// container deleted before it ran has no exit to report).
    pub fn attach_deleted(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let clients: Vec<u64> = c.attachers.drain(..).map(|a| a.client).collect();
        for client in clients {
            self.drop_client(client);
        }
    }

    /// TIOCSWINSZ on the container's terminal.
    pub fn resize(&mut self, id: &str, width: u16, height: u16) -> Response {
        let Some(c) = self.containers.get(id) else {
            return Response::not_found(id);
        };
        if !c.rec.stdio.tty {
            return Response::error(ErrorKind::FailedPrecondition, "has no tty to resize");
        }
        let Some(master) = c.stdout.as_ref().filter(|_| c.alive()) else {
            return Response::error(ErrorKind::FailedPrecondition, "is not running");
        };
        match crate::pty::set_winsize(master, width, height) {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(ErrorKind::Failed, format!("resizing the tty: {e}")),
        }
    }
}
