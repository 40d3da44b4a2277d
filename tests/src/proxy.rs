//! A bandwidth-limited TCP forwarder, so a test can act in the middle of a long pull
//! (e.g. kill berthd) no matter how fast loopback is. Plain threads: independent of the
//! test's async runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub struct SlowProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SlowProxy {
    /// Listens on 127.0.0.1:<free port> and forwards to `target`, each direction of each
    /// connection limited to `bytes_per_sec`.
    pub fn start(target: SocketAddr, bytes_per_sec: u64) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind proxy")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(target) {
                            pipe(client, server, bytes_per_sec, stop2.clone());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            port,
            stop,
            accept: Some(accept),
        })
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn pipe(a: TcpStream, b: TcpStream, rate: u64, stop: Arc<AtomicBool>) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let s2 = stop.clone();
    std::thread::spawn(move || copy_slow(a, b, rate, stop));
    std::thread::spawn(move || copy_slow(b2, a2, rate, s2));
}

fn copy_slow(mut from: TcpStream, mut to: TcpStream, rate: u64, stop: Arc<AtomicBool>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        // Sleep until the average rate drops back to the limit.
        let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}
