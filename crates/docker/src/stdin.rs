//! A hijacked stream's input: what the client sends goes to the session's stdin, watched
//! for the detach keys (dockerd's `detachKeys`, `ctrl-p,ctrl-q` by default).

use std::os::fd::OwnedFd;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::ApiError;
use crate::hijack::open;

/// dockerd's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Parses `detachKeys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`...) as the Docker CLI writes it.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for key in spec.split(',') {
        let key = key.trim();
        if let Some(c) = key.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Forwards what the client sends to stdin; true when the client typed the detach keys.
/// At the client's end of stream stdin is closed and this never returns.
pub async fn pump_stdin<R: AsyncRead + Unpin>(
    rd: &mut R,
    stdin: Option<OwnedFd>,
    detach: Option<Vec<u8>>,
) -> bool {
    let mut stdin = open(stdin);
    let keys = detach.unwrap_or_default();
    let mut matched = 0usize;
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        let mut detached = false;
        for &b in &buf[..n] {
            if matched > 0 && b != keys[matched] {
                // A partial sequence that did not complete is the user's input after all.
                out.extend_from_slice(&keys[..matched]);
                matched = 0;
            }
            if !keys.is_empty() && b == keys[matched] {
                matched += 1;
                if matched == keys.len() {
                    detached = true;
                    break;
                }
                continue;
            }
            out.push(b);
        }
        // What came before the keys still goes in.
        if let Some(fd) = &stdin
            && fd.write_all(&out).await.is_err()
        {
            stdin = None;
        }
        if detached {
            return true;
        }
    }
    drop(stdin);
    futures::future::pending::<()>().await;
    false
}
