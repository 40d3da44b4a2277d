//! Helpers for the streaming tests (Exec, Attach, PortForward): crictl from the CRI rig as
//! the reference client, a pseudo-terminal driver for interactive sessions, and small
//! network helpers.

pub mod crictl;
pub mod cut_proxy;
pub mod session;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` over HTTP/1.0 at `addr`; returns the body's length and sha256 (hex).
pub fn http_get_sha256(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u64, String)> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            bail!(
                "{addr}: connection closed in the response head: {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("{addr}{path}: {head}");
    }
    let mut hash = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = s.read(&mut buf)?;
        if k == 0 {
            break;
        }
        hash.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(hash.finalize())))
}

/// What [`pty_drive`] reports.
#[derive(Debug, serde::Deserialize)]
pub struct PtyRun {
    pub exit_code: Option<i32>,
    pub output: String,
    pub error: Option<String>,
}

/// Runs `cmd` on a pseudo-terminal, driven by `steps` (see tests/fixtures/stream/pty_drive.py).
pub fn pty_drive(steps: &serde_json::Value, cmd: &[String]) -> Result<PtyRun> {
    let script = crate::workspace_root().join("tests/fixtures/stream/pty_drive.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(steps.to_string())
        .arg("--")
        .args(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .context("run pty_drive.py")?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "pty_drive.py printed {text:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
