//! SPDY/3.1 sessions, server and client side, as the Kubernetes streaming protocols (exec,
//! attach, port-forward over `Upgrade: SPDY/3.1`) use them.
//!
//! Why our own: the only Rust SPDY crate, `spdy-mux`, is client-only (its API opens
//! error/data stream *pairs* towards a peer; it cannot accept the streams a client opens), and
//! a CRI runtime is the server end. This crate follows the behaviour of the Go peer every
//! kubelet/crictl/kubectl uses: `github.com/moby/spdystream` on top of
//! `golang.org/x/net/spdy`'s framer.
//!
//! Wire behaviour, matching spdystream:
//! - One zlib stream per direction for header blocks, primed with the SPDY/3 dictionary, each
//!   block sync-flushed (see `headers.rs`). Header names lowercase; multiple values NUL-joined.
//! - Client stream ids odd, server ids even, strictly increasing. A SYN_STREAM the acceptor
//!   takes is answered at once with an empty SYN_REPLY (the k8s client waits for it); one with
//!   a bad id gets RST_STREAM(PROTOCOL_ERROR) and the session goes on, like spdystream.
//!   FLAG_FIN on SYN_STREAM = the peer sends nothing (k8s's "error" stream);
//!   FLAG_UNIDIRECTIONAL = we may send nothing.
//! - PINGs of the peer's parity are echoed. GOAWAY is sent on close; a received GOAWAY stops
//!   new opens but lets running streams finish (the peer keeps reading until it closes).
//!
//! Flow control (the decision): spdystream implements none. It never sends WINDOW_UPDATE,
//! ignores the ones it gets (its frame handler logs "unhandled frame type") and writes each
//! `Write` as one DATA frame whatever the window. A peer that enforced the 64 KiB initial
//! window against spdystream would stall after 64 KiB. So we never block our sends on the
//! peer's window. We do send WINDOW_UPDATEs (per stream and for the session) for what the
//! application has consumed, every 32 KiB, so a strict SPDY/3.1 peer keeps sending too; Go
//! drops them harmlessly. Backpressure is therefore what spdystream does as well: bounded
//! buffers plus TCP. Each stream buffers at most [`Config::stream_buffer`] unread bytes (plus
//! the one frame being delivered); when a stream's buffer is full the session stops reading the
//! connection until the application reads (head-of-line blocking, like spdystream's unbuffered
//! per-stream channel), and TCP pushes back on the peer. Outgoing DATA waits when more than
//! [`Config::write_buffer`] bytes are queued for the connection.
//!
//! Notes for a server (what the Go peers do at the end of a session):
//! - client-go ends exec/attach by resetting every stream (RST_STREAM CANCEL) and closing the
//!   connection; port-forward resets each stream pair when a local connection ends. Reads
//!   then fail with `ConnectionReset` (peer RST) or `ConnectionAborted` (connection gone before
//!   the peer's FIN) once the buffered data is drained; spdystream reports both as EOF, so treat
//!   them as the end of input.
//! - Dropping a [`Stream`] sends RST_STREAM(CANCEL) if the peer may still send, a FIN if only we
//!   were open, nothing if both sides finished: call `shutdown()` first for a clean FIN.
//! - A session lives while any `Session`, `Acceptor` or `Stream` handle does; when the last
//!   goes it closes gracefully. It also ends when the peer disconnects, on a protocol error
//!   (GOAWAY PROTOCOL_ERROR), or on [`Session::close`]. A graceful close writes what is queued,
//!   GOAWAY, our TCP FIN, then keeps reading until the peer closes (at most
//!   [`Config::close_timeout`]): dropping a socket with unread input makes the kernel send a
//!   RST that can destroy data the peer has not read yet.

mod dictionary;
mod driver;
mod error;
mod frame;
#[cfg(test)]
mod go_fixture;
mod headers;
mod session;
mod stream;

pub use error::Error;
pub use session::{Acceptor, Session};
pub use stream::Stream;

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Session settings. `Config::default()` suits the kubelet/crictl peers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Send a PING this often (keeps idle connections through proxies alive, like the
    /// kubelet's ping period). `None`: never ping; peers' PINGs are always answered.
    pub ping_interval: Option<Duration>,
    /// Unread bytes one stream may buffer before the session stops reading the connection.
    pub stream_buffer: usize,
    /// Bytes of DATA queued for the connection before stream writes wait.
    pub write_buffer: usize,
    /// Streams the peer opened that may wait for `Acceptor::accept` before the session stops
    /// reading the connection.
    pub accept_backlog: usize,
    /// Largest decompressed header block accepted from the peer.
    pub max_header_block: usize,
    /// Closing bound: how long queued frames and the GOAWAY may take to be written, and then
    /// how long we keep reading (discarding) until the peer closes its side too.
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_interval: None,
            stream_buffer: 1 << 20,
            write_buffer: 1 << 20,
            accept_backlog: 64,
            max_header_block: 256 << 10,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Server side of a SPDY/3.1 session over an already-upgraded connection. Spawns the task
/// driving the session (`tokio::spawn`). [`Acceptor::accept`] yields the streams the peer
/// opens.
pub fn server<T>(io: T, cfg: Config) -> (Session, Acceptor)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    driver::spawn(io, cfg, true)
}

/// Client side (tests, `berth exec`): open streams with [`Session::open`]. Streams the server
/// opens are refused (no Kubernetes server opens any).
pub fn client<T>(io: T, cfg: Config) -> Session
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // Dropping the acceptor makes the driver refuse server-opened streams.
    driver::spawn(io, cfg, false).0
}
