//! Session state shared by the driver task and the handles (`Session`, `Acceptor`, `Stream`).
//!
//! One `std::sync::Mutex` guards the session state (stream table, outgoing frame queue); each
//! stream has its own lock for its receive buffer. Lock order: session, then stream.

use crate::Config;
use crate::error::Error;
use crate::frame::{FLAG_FIN, Frame, GOAWAY_OK};
use crate::stream::{Remote, Stream, StreamShared};
use http::HeaderMap;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Largest DATA frame we send. spdystream reads any size, but small frames keep one busy
/// stream from monopolising the connection and match what Go's io.Copy produces (32 KiB).
pub(crate) const MAX_DATA_FRAME: usize = 32 << 10;

/// Largest plain header block `Session::open` sends (deflate can grow incompressible input a
/// little; 8 MiB stays well inside the 24-bit frame length).
const MAX_OPEN_HEADERS: usize = 8 << 20;

/// Consumed bytes after which we send a WINDOW_UPDATE (half the SPDY/3.1 initial window).
pub(crate) const WINDOW_UPDATE_THRESHOLD: u32 = 32 << 10;

pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) is_server: bool,
    state: Mutex<State>,
    /// Wakes the writer when frames are queued or the session state changes.
    pub(crate) writer_wake: Notify,
    /// `true` once the session ended: streams get EOF/errors, opens fail.
    pub(crate) ended: watch::Sender<bool>,
    /// `true` once the writer wrote its last frame (or gave up).
    pub(crate) writer_done: watch::Sender<bool>,
    /// `true` once the driver task finished (connection dropped).
    pub(crate) finished: watch::Sender<bool>,
    /// The guard every handle holds; the driver hands it to the streams it accepts.
    guard: Mutex<Weak<Guard>>,
}

/// Held by every `Session`, `Acceptor` and `Stream`. When the last handle is gone nobody can
/// use the session anymore, so it closes gracefully (GOAWAY, flush, end) instead of lingering
/// until the peer hangs up.
pub(crate) struct Guard {
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) streams: HashMap<u32, Arc<StreamShared>>,
    /// Frames waiting for the writer, in wire order.
    pub(crate) out: VecDeque<Frame>,
    /// DATA bytes in `out` (bounded by `Config::write_buffer`).
    pub(crate) out_data: usize,
    pub(crate) write_waiters: Vec<Waker>,
    /// Streams we opened waiting for SYN_REPLY.
    pub(crate) pending_opens: HashMap<u32, oneshot::Sender<Result<(), Error>>>,
    pub(crate) next_id: u32,
    pub(crate) next_ping: u32,
    /// Highest stream id the peer opened.
    pub(crate) last_peer_id: u32,
    pub(crate) goaway_sent: bool,
    pub(crate) goaway_received: bool,
    /// The writer exits once `out` is empty.
    pub(crate) closing: bool,
    pub(crate) ended: bool,
    /// Consumed-but-unacknowledged bytes of the session-level window.
    pub(crate) session_unacked: u32,
}

impl Shared {
    pub(crate) fn new(cfg: Config, is_server: bool) -> Shared {
        let state = State {
            next_id: if is_server { 2 } else { 1 },
            next_ping: if is_server { 2 } else { 1 },
            ..State::default()
        };
        Shared {
            cfg,
            is_server,
            state: Mutex::new(state),
            writer_wake: Notify::new(),
            ended: watch::Sender::new(false),
            writer_done: watch::Sender::new(false),
            finished: watch::Sender::new(false),
            guard: Mutex::new(Weak::new()),
        }
    }

    /// Creates the guard of a new session (once, in `driver::spawn`).
    pub(crate) fn new_guard(self: &Arc<Self>) -> Arc<Guard> {
        let g = Arc::new(Guard {
            shared: self.clone(),
        });
        *self.guard.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&g);
        g
    }

    /// A strong guard for a stream the driver hands out; `None` once every handle is gone.
    pub(crate) fn guard(&self) -> Option<Arc<Guard>> {
        self.guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// Queues GOAWAY (once) and tells the writer to finish; it ends the session when done.
    pub(crate) fn begin_close(&self) {
        {
            let mut st = self.lock();
            if !st.ended && !st.goaway_sent {
                st.goaway_sent = true;
                let last_good = st.last_peer_id;
                self.push(
                    &mut st,
                    Frame::GoAway {
                        last_good,
                        status: GOAWAY_OK,
                    },
                );
            }
            st.closing = true;
        }
        self.writer_wake.notify_one();
    }

    /// A poisoned lock means a panic while holding it; the state is still consistent enough
    /// to tear the session down, so keep going rather than cascade panics.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a control frame (never bounded: they are small and must not wait behind data).
    pub(crate) fn push(&self, st: &mut State, frame: Frame) {
        if st.ended {
            return;
        }
        st.out.push_back(frame);
        self.writer_wake.notify_one();
    }

    pub(crate) fn push_now(&self, frame: Frame) {
        let mut st = self.lock();
        self.push(&mut st, frame);
    }

    /// Ends the session: every stream sees the end, pending opens fail, handles wake.
    pub(crate) fn end(&self) {
        let (streams, opens, waiters) = {
            let mut st = self.lock();
            if st.ended {
                return;
            }
            st.ended = true;
            st.closing = true;
            st.out.clear();
            st.out_data = 0;
            (
                std::mem::take(&mut st.streams),
                std::mem::take(&mut st.pending_opens),
                std::mem::take(&mut st.write_waiters),
            )
        };
        for s in streams.values() {
            s.remote_ended(Remote::Gone);
        }
        for (_, tx) in opens {
            let _ = tx.send(Err(Error::SessionClosed));
        }
        for w in waiters {
            w.wake();
        }
        self.writer_wake.notify_one();
        self.ended.send_replace(true);
    }

    pub(crate) fn is_ended(&self) -> bool {
        *self.ended.borrow()
    }
}

/// A handle on a session (cheap to clone). The session ends on [`Session::close`], when the
/// peer goes away, or (gracefully, with GOAWAY) once every `Session`, `Acceptor` and `Stream`
/// of it has been dropped.
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) guard: Arc<Guard>,
}

impl Session {
    /// Opens a stream (SYN_STREAM with `headers`; `fin`: we send nothing on it) and waits for
    /// the peer's SYN_REPLY.
    pub async fn open(&self, headers: HeaderMap, fin: bool) -> Result<Stream, Error> {
        // A block this large could not fit a frame once compressed; refusing it here keeps the
        // writer's compressor from getting ahead of the peer's decompressor.
        let raw = crate::headers::encode_block(&headers).len();
        if raw > MAX_OPEN_HEADERS {
            return Err(Error::HeadersTooLarge(raw));
        }
        let (tx, rx) = oneshot::channel();
        let stream = {
            let mut st = self.shared.lock();
            if st.ended || st.closing {
                return Err(Error::SessionClosed);
            }
            if st.goaway_received {
                return Err(Error::GoneAway);
            }
            let id = st.next_id;
            if id > 0x7fff_ffff {
                return Err(Error::StreamIdsExhausted);
            }
            st.next_id += 2;
            let shared = Arc::new(StreamShared::new(id, Remote::Open, fin));
            st.streams.insert(id, shared.clone());
            st.pending_opens.insert(id, tx);
            self.shared.push(
                &mut st,
                Frame::SynStream {
                    id,
                    associated: 0,
                    priority: 0,
                    flags: if fin { FLAG_FIN } else { 0 },
                    headers: headers.clone(),
                },
            );
            Stream::new(
                shared,
                self.shared.clone(),
                headers,
                Some(self.guard.clone()),
            )
        };
        match rx.await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::SessionClosed),
        }
    }

    /// Sends GOAWAY, writes what is queued (up to `Config::close_timeout`), and ends the
    /// session. Running streams end with it.
    pub async fn close(&self) {
        self.shared.begin_close();
        // The writer flushes, sends FIN, lingers until the peer closes (at most
        // close_timeout), then ends the session. If even the flush stalls (the peer does not
        // read), end it here.
        let mut written = self.shared.writer_done.subscribe();
        // The watch `Ref` must be dropped inside the block: it is not Send.
        let flushed = async move {
            let _ = written.wait_for(|d| *d).await;
        };
        if tokio::time::timeout(self.shared.cfg.close_timeout, flushed)
            .await
            .is_err()
        {
            self.shared.end();
        }
        self.closed().await;
    }

    /// Resolves when the session has ended (peer gone, protocol error, or `close()`) and its
    /// task has released the connection.
    pub async fn closed(&self) {
        let mut rx = self.shared.finished.subscribe();
        let _ = rx.wait_for(|f| *f).await;
    }
}

/// Yields the streams the peer opens (server sessions).
pub struct Acceptor {
    pub(crate) rx: mpsc::Receiver<Stream>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _guard: Arc<Guard>,
}

impl Acceptor {
    /// The next stream the peer opened; its SYN_REPLY has already been sent. `None` once the
    /// session ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        let stream = self.rx.recv().await?;
        if self.shared.is_ended() {
            return None;
        }
        Some(stream)
    }
}
