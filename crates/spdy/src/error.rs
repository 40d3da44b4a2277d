//! The crate's error type.

/// What went wrong in a SPDY session or stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the underlying connection failed.
    #[error("spdy connection I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something SPDY/3.1 forbids; the session is torn down with GOAWAY.
    #[error("spdy protocol error: {0}")]
    Protocol(String),
    /// A header block could not be (de)compressed.
    #[error("spdy header compression: {0}")]
    Compression(String),
    /// A header we were asked to send cannot be encoded.
    #[error("spdy header block too large ({0} bytes compressed)")]
    HeadersTooLarge(usize),
    /// The session ended (closed locally, GOAWAY exchanged, or the peer went away).
    #[error("spdy session is closed")]
    SessionClosed,
    /// The peer sent GOAWAY, so it accepts no new streams.
    #[error("spdy peer sent GOAWAY; no new streams can be opened")]
    GoneAway,
    /// The peer answered the stream with RST_STREAM instead of SYN_REPLY.
    #[error("spdy stream {id} was reset by the peer (status {status})")]
    Reset {
        /// The stream id.
        id: u32,
        /// RST_STREAM status code (e.g. 3 REFUSED_STREAM, 5 CANCEL).
        status: u32,
    },
    /// All 2^30 stream ids of our parity are used up; open a new session.
    #[error("spdy stream ids exhausted on this session")]
    StreamIdsExhausted,
}
