//! The monitor's single-threaded event loop: poll(2) over the listening socket, a
//! signalfd, client connections, init sync sockets and output pipes. Every child is reaped
//! here (waitpid(-1)); exits are matched to containers and execs by PID.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signalfd::SignalFd;

use super::container::Container;
use super::exec::Exec;
use super::fdpass;
use super::log::Stream;
use super::oci::Helper;
use super::protocol::{Request, Response};
use super::sys;

/// A request line longer than this closes the connection.
const MAX_REQUEST: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Listener,
    Signals,
    Client(u64),
    InitSock(String),
    Output(String, Stream),
    Pidfd(String),
    ExecSock(u64),
    ExecOutput(u64, Stream),
    /// An attacher's stdin (container id, client).
    AttachIn(String, u64),
    /// The container's stdin has room again for what attachers wrote.
    ContainerIn(String),
}

pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    /// A request is being served (or a streaming session runs); the next line waits.
    pub busy: bool,
    /// Descriptors that came with the request being read ([`super::fdpass`]).
    fds: Vec<OwnedFd>,
}

pub struct Monitor {
    pub dir: PathBuf,
    pub exe: PathBuf,
    listener: UnixListener,
    signals: SignalFd,
    pub clients: HashMap<u64, Client>,
    next_id: u64,
    pub containers: BTreeMap<String, Container>,
    pub execs: HashMap<u64, Exec>,
    /// External runtime commands (runc/crun create, start, exec) still running, by PID.
    pub helpers: HashMap<i32, Helper>,
    /// Exit codes of reaped PIDs no container or exec claimed (yet).
    pub unclaimed: HashMap<i32, (i32, Instant)>,
    /// A `shutdown` waiting for the containers to die: its client.
    pub shutdown: Option<u64>,
    /// Set once the monitor should exit after the current iteration.
    pub exit: bool,
}

impl Monitor {
    pub fn new(dir: PathBuf, exe: PathBuf, listener: UnixListener, signals: SignalFd) -> Self {
        Monitor {
            dir,
            exe,
            listener,
            signals,
            clients: HashMap::new(),
            next_id: 1,
            containers: BTreeMap::new(),
            execs: HashMap::new(),
            helpers: HashMap::new(),
            unclaimed: HashMap::new(),
            shutdown: None,
            exit: false,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Serves until a shutdown completes.
    pub fn run(&mut self) {
        while !self.exit {
            let (mut fds, tokens) = self.poll_set();
            let timeout = self.poll_timeout();
            if let Err(e) = sys::poll(&mut fds, timeout) {
                eprintln!("monitor: poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            for (pfd, token) in fds.iter().zip(tokens) {
                if pfd.revents != 0 {
                    self.handle(token, pfd.revents);
                }
            }
            self.reap();
            self.check_deadlines();
            self.serve_buffered();
            self.check_shutdown();
        }
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Token>) {
        let mut fds = Vec::new();
        let mut tokens = Vec::new();
        let mut add = |fd: BorrowedFd<'_>, events: i16, t: Token| {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            });
            tokens.push(t);
        };
        add(self.listener.as_fd(), libc::POLLIN, Token::Listener);
        add(self.signals.as_fd(), libc::POLLIN, Token::Signals);
        for (id, c) in &self.clients {
            let ev = if c.busy { 0 } else { libc::POLLIN };
            add(c.stream.as_fd(), ev, Token::Client(*id));
        }
        for (id, c) in &self.containers {
            if let Some(ch) = &c.sock {
                add(ch.fd(), libc::POLLIN, Token::InitSock(id.clone()));
            }
            if let Some(o) = &c.stdout {
                add(
                    o.as_fd(),
                    libc::POLLIN,
                    Token::Output(id.clone(), Stream::Stdout),
                );
            }
            if let Some(o) = &c.stderr {
                add(
                    o.as_fd(),
                    libc::POLLIN,
                    Token::Output(id.clone(), Stream::Stderr),
                );
            }
            if let Some(p) = &c.pidfd {
                add(p.as_fd(), libc::POLLIN, Token::Pidfd(id.clone()));
            }
            c.attach_poll_set(id, &mut add);
        }
        for (id, e) in &self.execs {
            if let Some(ch) = &e.sock {
                add(ch.fd(), libc::POLLIN, Token::ExecSock(*id));
            }
            if let Some(o) = &e.stdout {
                add(
                    o.as_fd(),
                    libc::POLLIN,
                    Token::ExecOutput(*id, Stream::Stdout),
                );
            }
            if let Some(o) = &e.stderr {
                add(
                    o.as_fd(),
                    libc::POLLIN,
                    Token::ExecOutput(*id, Stream::Stderr),
                );
            }
        }
        (fds, tokens)
    }

    fn poll_timeout(&self) -> i32 {
        let deadlines = self
            .containers
            .values()
            .filter_map(|c| c.deadline)
            .chain(self.execs.values().filter_map(|e| e.deadline));
        match deadlines.min() {
            None if self.unclaimed.is_empty() => -1,
            None => 5_000,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                ms.clamp(1, 5_000) as i32
            }
        }
    }

    fn handle(&mut self, token: Token, revents: i16) {
        match token {
            Token::Listener => self.accept(),
            Token::Signals => {
                // SIGCHLD only wakes us: reap() runs every iteration. SIGTERM, SIGINT and
                // SIGHUP are ignored: containers outlive whoever sends them.
                while let Ok(Some(_)) = self.signals.read_signal() {}
            }
            Token::Client(id) => self.client_event(id, revents),
            Token::InitSock(id) => self.init_sock_event(&id),
            Token::Output(id, stream) => self.output_event(&id, stream),
            Token::Pidfd(id) => self.pidfd_event(&id),
            Token::ExecSock(id) => self.exec_sock_event(id),
            Token::ExecOutput(id, stream) => self.exec_output_event(id, stream),
            Token::AttachIn(id, client) => self.attach_stdin_event(&id, client),
            Token::ContainerIn(id) => self.container_stdin_event(&id),
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // Replies are written blocking (bounded): exec output can be 32 MiB.
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
                    let id = self.next_id();
                    self.clients.insert(
                        id,
                        Client {
                            stream,
                            buf: Vec::new(),
                            busy: false,
                            fds: Vec::new(),
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn client_event(&mut self, id: u64, revents: i16) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if c.busy {
            // Only HUP/ERR are polled for: the client went away; its answer is dropped.
            return self.drop_client(id);
        }
        let mut chunk = [0u8; 64 * 1024];
        match fdpass::recv(&c.stream, &mut chunk, &mut c.fds) {
            Ok(0) => self.drop_client(id),
            Ok(n) => {
                c.buf.extend_from_slice(&chunk[..n]);
                if c.buf.len() > MAX_REQUEST {
                    self.drop_client(id);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("monitor: client: {e}");
                self.drop_client(id);
            }
        }
        let _ = revents;
    }

    /// Forgets a connection; a streaming session it carried ends with it.
    pub fn drop_client(&mut self, id: u64) {
        if self.clients.remove(&id).is_some() {
            self.exec_stream_client_gone(id);
            self.attach_client_gone(id);
        }
    }

    /// Serves every complete request line of idle clients.
    fn serve_buffered(&mut self) {
        let ready: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.busy && c.buf.contains(&b'\n'))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            let Some(nl) = c.buf.iter().position(|b| *b == b'\n') else {
                continue;
            };
            let line: Vec<u8> = c.buf.drain(..=nl).collect();
            c.busy = true;
            // Descriptors belong to the request they came with; unused ones are closed.
            let fds = std::mem::take(&mut c.fds);
            let answer = match serde_json::from_slice::<Request>(&line[..nl]) {
                Ok(req) => self.dispatch(id, req, fds),
                Err(e) => Some(Response::error(
                    super::protocol::ErrorKind::InvalidArgument,
                    format!("unreadable request: {e}"),
                )),
            };
            if let Some(resp) = answer {
                self.reply(id, &resp, &[]);
            }
        }
    }

    /// Serves one request; None when the answer comes later (via [`Monitor::reply`]).
    fn dispatch(&mut self, client: u64, req: Request, fds: Vec<OwnedFd>) -> Option<Response> {
        match req {
            Request::Create {
                id,
                bundle,
                handler,
                runtime,
                stdio,
            } => self.create(client, id, bundle.into(), handler, runtime, stdio),
            Request::Start { id } => self.start(client, &id),
            Request::Kill { id, signal, all } => Some(self.kill(&id, signal, all)),
            Request::State { id } => Some(match self.containers.get(&id) {
                Some(c) => Response::with_state(c.state()),
                None => Response::not_found(&id),
            }),
            Request::Wait { id } => self.wait(client, &id),
            Request::Exec {
                id,
                process,
                timeout_ms,
                max_output,
                drain_ms,
            } => self.exec(client, &id, &process, timeout_ms, max_output, drain_ms),
            Request::Update { id, resources } => Some(self.update(&id, &resources)),
            Request::ReopenLog { id } => Some(self.reopen_log(&id)),
            Request::Pause { id } => Some(self.set_frozen(&id, true)),
            Request::Resume { id } => Some(self.set_frozen(&id, false)),
            Request::Delete { id } => self.delete(client, &id),
            Request::Shutdown { kill } => self.request_shutdown(client, kill),
            Request::List => Some(Response {
                ok: true,
                ids: Some(self.containers.keys().cloned().collect()),
                ..Default::default()
            }),
            Request::ExecStream { id, process, tty } => {
                self.exec_stream(client, &id, &process, tty, fds)
            }
            Request::Attach {
                id,
                stdin,
                stdout,
                stderr,
            } => self.attach(client, &id, [stdin, stdout, stderr], fds),
            Request::Resize { id, width, height } => Some(self.resize(&id, width, height)),
        }
    }

    /// Answers `client` (if still connected) with `resp` followed by raw `tail` bytes.
    pub fn reply(&mut self, client: u64, resp: &Response, tail: &[&[u8]]) {
        self.reply_fds(client, resp, tail, &[]);
    }

    /// [`Monitor::reply`] with descriptors attached to the answer's first bytes.
    pub fn reply_fds(&mut self, client: u64, resp: &Response, tail: &[&[u8]], fds: &[RawFd]) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        let mut line = serde_json::to_vec(resp).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        line.push(b'\n');
        let sent = match fds {
            [] => Ok(0),
            _ => fdpass::send(&c.stream, &line, fds),
        };
        let mut ok = match sent {
            Ok(n) => c.stream.write_all(&line[n..]).is_ok(),
            Err(_) => false,
        };
        for t in tail {
            ok = ok && c.stream.write_all(t).is_ok();
        }
        if ok {
            c.busy = false;
        } else {
            self.drop_client(client);
        }
    }
}
