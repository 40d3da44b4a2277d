//! Single-use tokens for registered requests: the URL handed out by Exec/Attach/PortForward
//! is the only credential of a streaming connection (like the kubelet's request cache), so
//! tokens are random, used once and short-lived.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::stream::{StreamError, StreamRequest};

/// Pending requests beyond this are refused: a client that registers without ever
/// connecting must not grow the map without bound.
pub const MAX_PENDING: usize = 10_000;

/// Expired tokens are kept this long, so that a late client hears "expired", not "not found".
const EXPIRED_KEPT: Duration = Duration::from_secs(300);

/// 256 random bits, URL-safe base64 (43 characters).
const TOKEN_BYTES: usize = 32;

/// Why a token was not accepted; the text is the 404 body the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Unknown,
    Expired,
}

impl Rejection {
    pub fn message(self) -> &'static str {
        match self {
            Rejection::Unknown => {
                "streaming token not found: it is wrong or was already used (a URL serves one connection)"
            }
            Rejection::Expired => {
                "streaming token expired: request a new URL (Exec/Attach/PortForward) and connect within the token TTL"
            }
        }
    }
}

struct Entry {
    req: StreamRequest,
    expires: Instant,
}

pub struct TokenStore {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl TokenStore {
    pub fn new(ttl: Duration) -> Self {
        TokenStore {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `req` under a new token.
    pub fn insert(&self, req: StreamRequest) -> Result<String, StreamError> {
        let mut raw = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut raw).map_err(|e| {
            StreamError::Unavailable(format!("no randomness for a streaming token: {e}"))
        })?;
        let token = URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_PENDING {
            entries.retain(|_, e| e.expires > now);
        }
        if entries.len() >= MAX_PENDING {
            return Err(StreamError::Unavailable(format!(
                "{MAX_PENDING} streaming requests are already waiting for their client; \
                 connect to the URLs handed out or wait for them to expire"
            )));
        }
        entries.insert(
            token.clone(),
            Entry {
                req,
                expires: now + self.ttl,
            },
        );
        Ok(token)
    }

    /// Takes the request registered under `token`: a second call with the same token fails.
    pub fn consume(&self, token: &str) -> Result<StreamRequest, Rejection> {
        let entry = self.lock().remove(token).ok_or(Rejection::Unknown)?;
        if entry.expires <= Instant::now() {
            return Err(Rejection::Expired);
        }
        Ok(entry.req)
    }

    /// Forgets tokens expired for a while; returns how many are left.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, e| e.expires + EXPIRED_KEPT > now);
        entries.len()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (every
        // operation is a single insert/remove/retain), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> StreamRequest {
        StreamRequest::PortForward {
            pod_id: "p".into(),
            netns: None,
        }
    }

    #[test]
    fn tokens_are_single_use_and_unguessable() {
        let store = TokenStore::new(Duration::from_secs(60));
        let a = store.insert(pf()).expect("insert");
        let b = store.insert(pf()).expect("insert");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(store.consume(&a).is_ok());
        assert_eq!(store.consume(&a).err(), Some(Rejection::Unknown));
        assert_eq!(store.consume("nope").err(), Some(Rejection::Unknown));
    }

    #[test]
    fn expired_tokens_are_refused_and_swept() {
        let store = TokenStore::new(Duration::from_millis(0));
        let a = store.insert(pf()).expect("insert");
        let _b = store.insert(pf()).expect("insert");
        assert_eq!(store.consume(&a).err(), Some(Rejection::Expired));
        // Kept a while to be reported as expired, and dropped when room is needed.
        assert_eq!(store.sweep(), 1);
    }

    #[test]
    fn pending_requests_are_bounded() {
        let store = TokenStore::new(Duration::from_secs(60));
        for _ in 0..MAX_PENDING {
            store.insert(pf()).expect("insert");
        }
        let err = store.insert(pf()).expect_err("over the bound");
        assert!(err.to_string().contains("already waiting"), "{err}");
    }
}
