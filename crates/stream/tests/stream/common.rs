//! Fakes behind the streaming server: sessions on real pipes driven by a thread playing
//! the process, a forwarder dialing 127.0.0.1, and a TCP echo server.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::config::StreamingConfig;
use berth_core::runtime::*;
use berth_core::stream::*;
use berth_stream::{StreamServer, TlsSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
pub struct Fake {
    pub started: AtomicUsize,
    pub dropped: Arc<AtomicUsize>,
    pub sizes: Arc<Mutex<Vec<(u16, u16)>>>,
}

struct Resizer(Arc<Mutex<Vec<(u16, u16)>>>);

#[async_trait]
impl TtyResizer for Resizer {
    async fn resize(&self, w: u16, h: u16) -> Result<(), RuntimeError> {
        self.0.lock().expect("lock").push((w, h));
        Ok(())
    }
}

/// Counts the sessions dropped (the server lets go of them at the end, or when the
/// client leaves).
struct DropGuard(Arc<AtomicUsize>);
impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn file(fd: std::os::fd::OwnedFd) -> std::fs::File {
    std::fs::File::from(fd)
}

impl Fake {
    /// args: [mode, exit code]. Modes: `cat` (stdin → stdout until EOF, then "bye\n" on
    /// stderr), `emit` ("out\n", "err\n"), `resize` (waits for a resize, prints WxH),
    /// `bg` (exits, its output held open), `hang` (never exits), `fail` (the session cannot start).
    fn session(&self, args: &[String], tty: bool) -> Result<StdioSession, RuntimeError> {
        let mode = args.first().cloned().unwrap_or_default();
        let code: i32 = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        if mode == "fail" {
            return Err(RuntimeError::NotFound("c-missing".into()));
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        let (in_r, in_w) = nix::unistd::pipe().expect("pipe");
        let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
        let (err_r, err_w) = nix::unistd::pipe().expect("pipe");
        let (tx, rx) = tokio::sync::oneshot::channel::<i32>();
        let sizes = self.sizes.clone();
        std::thread::spawn(move || {
            let (mut stdin, mut stdout, mut stderr) = (file(in_r), file(out_w), file(err_w));
            match mode.as_str() {
                "cat" => {
                    let mut buf = [0u8; 8192];
                    loop {
                        match stdin.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stdout.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = stderr.write_all(b"bye\n");
                }
                "bg" => {
                    // Like `sh -c 'sleep 10 & echo out'`: exits, output held open behind it.
                    let _ = stdout.write_all(b"out\n");
                    let _ = tx.send(code);
                    std::thread::sleep(Duration::from_secs(10));
                    drop((stdout, stderr));
                    return;
                }
                "emit" => {
                    let _ = stdout.write_all(b"out\n");
                    let _ = stderr.write_all(b"err\n");
                }
                "resize" => loop {
                    if let Some((w, h)) = sizes.lock().expect("lock").first().copied() {
                        let _ = writeln!(stdout, "{w}x{h}");
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                },
                _ => {
                    // hang: hold the pipes until the session is dropped (stdin closes).
                    let mut buf = [0u8; 64];
                    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
                    return;
                }
            }
            drop((stdout, stderr));
            let _ = tx.send(code);
        });
        let guard = DropGuard(self.dropped.clone());
        let exit: ExitFuture = Box::pin(async move {
            let _guard = guard;
            match rx.await {
                Ok(code) => Ok(code),
                Err(_) => std::future::pending().await,
            }
        });
        Ok(StdioSession {
            stdin: Some(in_w),
            stdout: Some(out_r),
            stderr: if tty { None } else { Some(err_r) },
            resize: tty.then(|| Box::new(Resizer(self.sizes.clone())) as Box<dyn TtyResizer>),
            exit,
        })
    }
}

fn unused<T>() -> Result<T, RuntimeError> {
    Err(RuntimeError::failed(
        "fake runtime",
        "not used by the streaming tests",
    ))
}

#[async_trait]
impl ContainerRuntime for Fake {
    async fn create(&self, _: &CreateRequest) -> Result<ProcessState, RuntimeError> {
        unused()
    }
    async fn start(&self, _: &str, _: &str) -> Result<ProcessState, RuntimeError> {
        unused()
    }
    async fn kill(&self, _: &str, _: &str, _: i32, _: bool) -> Result<(), RuntimeError> {
        unused()
    }
    async fn pause(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        unused()
    }
    async fn resume(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        unused()
    }
    async fn wait(&self, _: &str, _: &str, _: Duration) -> Result<ProcessState, RuntimeError> {
        unused()
    }
    async fn state(&self, _: &str, _: &str) -> Result<ProcessState, RuntimeError> {
        unused()
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        unused()
    }
    async fn exec_sync(&self, _: &str, _: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        unused()
    }
    async fn update(&self, _: &str, _: &str, _: &Resources) -> Result<(), RuntimeError> {
        unused()
    }
    async fn reopen_log(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        unused()
    }
    async fn exec_stream(
        &self,
        _: &str,
        req: &ExecStreamRequest,
    ) -> Result<StdioSession, RuntimeError> {
        let args: Vec<String> =
            serde_json::from_value(req.process["args"].clone()).unwrap_or_default();
        self.session(&args, req.tty)
    }
    async fn attach(&self, _: &str, req: &AttachRequest) -> Result<StdioSession, RuntimeError> {
        self.session(&["emit".into(), "0".into()], req.tty)
    }
    async fn release_pod(&self, _: &str) -> Result<(), RuntimeError> {
        unused()
    }
}

pub struct Dialer;

#[async_trait]
impl PortForwarder for Dialer {
    async fn connect(
        &self,
        _: Option<PathBuf>,
        port: u16,
    ) -> Result<std::net::TcpStream, RuntimeError> {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| RuntimeError::failed("dial", e))
    }
}

pub struct Rig {
    pub server: Arc<StreamServer>,
    pub fake: Arc<Fake>,
}

pub async fn rig_with(ttl: u64, tls: Option<TlsSettings>) -> Rig {
    let fake = Arc::new(Fake::default());
    let cfg = StreamingConfig {
        address: "127.0.0.1:0".into(),
        token_ttl_secs: ttl,
        drain_timeout_secs: 2,
    };
    let server = StreamServer::start(&cfg, tls, fake.clone(), Arc::new(Dialer))
        .await
        .expect("start");
    Rig { server, fake }
}

pub async fn rig() -> Rig {
    rig_with(60, None).await
}

impl Rig {
    pub fn exec(&self, args: &[&str], stdin: bool, tty: bool) -> String {
        let req = ExecStreamRequest {
            container_id: "c1".into(),
            process: serde_json::json!({ "args": args, "terminal": tty }),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        };
        self.server
            .register(StreamRequest::Exec {
                pod_id: "p1".into(),
                req,
            })
            .expect("register")
    }

    pub fn portforward(&self) -> String {
        self.server
            .register(StreamRequest::PortForward {
                pod_id: "p1".into(),
                netns: None,
            })
            .expect("register")
    }

    pub async fn wait_dropped(&self, n: usize) {
        for _ in 0..500 {
            if self.fake.dropped.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the session was not dropped");
    }
}

/// The path and query of a URL the server handed out.
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").expect("scheme").1;
    rest[rest.find('/').expect("path")..].to_string()
}

pub fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    rest[..rest.find('/').expect("path")].parse().expect("addr")
}

/// Sends a raw HTTP/1.1 request; answers the status code and the body.
pub async fn raw_request(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write");
    // Read the head, then the body by its Content-Length (the connection stays open).
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if n == 0 {
            break;
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|b| b.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A TCP server that echoes each connection and closes its side at the client's EOF.
pub async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

/// Deterministic pseudo-random payload.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}
