//! One SPDY stream: `AsyncRead` yields the peer's DATA (EOF on its FIN), `AsyncWrite` sends
//! DATA (`poll_shutdown` sends our FIN).

use crate::frame::{FLAG_FIN, Frame, RST_CANCEL, RST_REFUSED_STREAM};
use crate::session::{Guard, MAX_DATA_FRAME, Shared, WINDOW_UPDATE_THRESHOLD};
use bytes::{Buf, Bytes};
use http::HeaderMap;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What the peer's side of a stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remote {
    /// It may still send DATA.
    Open,
    /// It sent FIN: reads end with EOF once the buffer is drained.
    Fin,
    /// It sent RST_STREAM with this status.
    Reset(u32),
    /// The session ended before the peer finished the stream.
    Gone,
}

/// The part of a stream the session driver also touches.
pub(crate) struct StreamShared {
    pub(crate) id: u32,
    inner: Mutex<Inner>,
    /// Signalled when the application consumed buffered data (the driver may be waiting for
    /// room) or dropped the stream.
    pub(crate) space: Notify,
}

struct Inner {
    recv: VecDeque<Bytes>,
    recv_bytes: usize,
    remote: Remote,
    read_waker: Option<Waker>,
    /// We sent FIN (or the peer opened the stream unidirectional): no more writes.
    local_fin: bool,
    /// The `Stream` handle is gone; incoming DATA is discarded.
    dropped: bool,
    /// Consumed bytes not yet acknowledged with WINDOW_UPDATE.
    unacked: u32,
}

/// Outcome of handing a DATA frame to a stream.
pub(crate) enum Deliver {
    /// Buffered; `finished`: both sides are now closed (forget the stream).
    Done { finished: bool },
    /// The buffer is full: wait for `space`, then try again.
    Full,
    /// The stream takes no data anymore (dropped, or the peer already finished): discard.
    Discard,
}

impl StreamShared {
    pub(crate) fn new(id: u32, remote: Remote, local_fin: bool) -> StreamShared {
        StreamShared {
            id,
            inner: Mutex::new(Inner {
                recv: VecDeque::new(),
                recv_bytes: 0,
                remote,
                read_waker: None,
                local_fin,
                dropped: false,
                unacked: 0,
            }),
            space: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn deliver(&self, data: &Bytes, fin: bool, bound: usize) -> Deliver {
        let mut i = self.lock();
        if i.dropped || i.remote != Remote::Open {
            return Deliver::Discard;
        }
        if !data.is_empty() {
            // Accept a frame while below the bound, so the bound is exceeded by at most one
            // frame and a frame larger than the bound still gets through.
            if i.recv_bytes >= bound {
                return Deliver::Full;
            }
            i.recv_bytes += data.len();
            i.recv.push_back(data.clone());
        }
        if fin {
            i.remote = Remote::Fin;
        }
        if let Some(w) = i.read_waker.take() {
            w.wake();
        }
        Deliver::Done {
            finished: i.remote != Remote::Open && i.local_fin,
        }
    }

    /// The peer finished (FIN, RST) or the session ended. A FIN already seen stays a clean EOF.
    /// Returns whether both sides are now closed.
    pub(crate) fn remote_ended(&self, how: Remote) -> bool {
        let mut i = self.lock();
        if i.remote == Remote::Open {
            i.remote = how;
        }
        if matches!(how, Remote::Reset(_) | Remote::Gone) {
            // Nothing can be sent on a reset stream.
            i.local_fin = true;
        }
        if let Some(w) = i.read_waker.take() {
            w.wake();
        }
        drop(i);
        self.space.notify_one();
        self.finished()
    }

    pub(crate) fn finished(&self) -> bool {
        let i = self.lock();
        i.remote != Remote::Open && i.local_fin
    }
}

/// A SPDY stream. Reading yields the peer's DATA and ends with EOF at its FIN (an error if the
/// peer reset the stream or the session ended first). Writing sends DATA; `shutdown` sends
/// our FIN. `poll_flush` returns once the data is queued for the connection, which the session
/// writes promptly (there is no per-stream flush on the wire).
///
/// Dropping a stream: if the peer may still send, RST_STREAM(CANCEL); if only we were still
/// open, a FIN; nothing when both sides are done.
pub struct Stream {
    shared: Arc<StreamShared>,
    session: Arc<Shared>,
    headers: HeaderMap,
    current: Bytes,
    /// `reset`/`refuse` already dealt with the peer.
    released: bool,
    /// Keeps the session open while the stream is in use (declared last: dropped after
    /// `Drop::drop` queued our RST/FIN).
    _guard: Option<Arc<Guard>>,
}

impl Stream {
    pub(crate) fn new(
        shared: Arc<StreamShared>,
        session: Arc<Shared>,
        headers: HeaderMap,
        guard: Option<Arc<Guard>>,
    ) -> Self {
        Stream {
            shared,
            session,
            headers,
            current: Bytes::new(),
            released: false,
            _guard: guard,
        }
    }

    /// The stream id (odd: opened by the client, even: by the server).
    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// The headers of the SYN_STREAM that opened the stream.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Aborts the stream with RST_STREAM(CANCEL).
    pub fn reset(mut self) {
        self.release(Some(RST_CANCEL));
    }

    /// Rejects a stream the peer opened (RST_STREAM(REFUSED_STREAM)).
    pub(crate) fn refuse(mut self) {
        self.release(Some(RST_REFUSED_STREAM));
    }

    /// Tells the peer we are done with the stream, forgets it, wakes the driver if it waits
    /// for room in our buffer. `rst`: reset with that status instead of the drop rules.
    fn release(&mut self, rst: Option<u32>) {
        if self.released {
            return;
        }
        self.released = true;
        let id = self.shared.id;
        let frame = {
            let mut i = self.shared.lock();
            i.dropped = true;
            i.recv.clear();
            i.recv_bytes = 0;
            let frame = match (i.remote, i.local_fin, rst) {
                (Remote::Reset(_) | Remote::Gone, _, _) => None,
                (_, _, Some(status)) => Some(Frame::RstStream { id, status }),
                (Remote::Open, _, None) => Some(Frame::RstStream {
                    id,
                    status: RST_CANCEL,
                }),
                (Remote::Fin, false, None) => Some(Frame::Data {
                    id,
                    flags: FLAG_FIN,
                    data: Bytes::new(),
                }),
                (Remote::Fin, true, None) => None,
            };
            i.local_fin = true;
            frame
        };
        self.shared.space.notify_one();
        let mut st = self.session.lock();
        st.streams.remove(&id);
        st.pending_opens.remove(&id);
        if let Some(f) = frame {
            self.session.push(&mut st, f);
        }
    }

    /// Acknowledges consumed bytes so a peer that enforces SPDY/3.1 windows keeps sending.
    fn acknowledge(&self, stream_bytes: u32, consumed: u32) {
        let mut st = self.session.lock();
        if stream_bytes > 0 {
            let id = self.shared.id;
            self.session.push(
                &mut st,
                Frame::WindowUpdate {
                    id,
                    delta: stream_bytes,
                },
            );
        }
        st.session_unacked = st.session_unacked.saturating_add(consumed);
        if st.session_unacked >= WINDOW_UPDATE_THRESHOLD {
            let delta = std::mem::take(&mut st.session_unacked);
            self.session
                .push(&mut st, Frame::WindowUpdate { id: 0, delta });
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.release(None);
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            let mut i = this.shared.lock();
            match i.recv.pop_front() {
                Some(chunk) => {
                    i.recv_bytes -= chunk.len();
                    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                    i.unacked = i.unacked.saturating_add(len);
                    let ack = if i.unacked >= WINDOW_UPDATE_THRESHOLD && i.remote == Remote::Open {
                        std::mem::take(&mut i.unacked)
                    } else {
                        0
                    };
                    drop(i);
                    this.shared.space.notify_one();
                    this.acknowledge(ack, len);
                    this.current = chunk;
                }
                None => {
                    return match i.remote {
                        Remote::Open => {
                            i.read_waker = Some(cx.waker().clone());
                            Poll::Pending
                        }
                        Remote::Fin => Poll::Ready(Ok(())),
                        Remote::Reset(status) => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            format!(
                                "spdy stream {} reset by the peer (status {status})",
                                this.id()
                            ),
                        ))),
                        Remote::Gone => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            format!("spdy session ended before stream {} finished", this.id()),
                        ))),
                    };
                }
            }
        }
        let n = buf.remaining().min(this.current.len());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        {
            let i = this.shared.lock();
            if let Remote::Reset(status) = i.remote {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!(
                        "spdy stream {} reset by the peer (status {status})",
                        this.id()
                    ),
                )));
            }
            if i.local_fin {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("spdy stream {} is closed for writing", this.id()),
                )));
            }
        }
        let mut st = this.session.lock();
        if st.ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy session ended",
            )));
        }
        if st.out_data >= this.session.cfg.write_buffer.max(1) {
            st.write_waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_DATA_FRAME);
        st.out_data += n;
        let id = this.shared.id;
        this.session.push(
            &mut st,
            Frame::Data {
                id,
                flags: 0,
                data: Bytes::copy_from_slice(&buf[..n]),
            },
        );
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let finished = {
            let mut i = this.shared.lock();
            if i.local_fin {
                return Poll::Ready(Ok(()));
            }
            i.local_fin = true;
            i.remote != Remote::Open
        };
        let id = this.shared.id;
        let mut st = this.session.lock();
        this.session.push(
            &mut st,
            Frame::Data {
                id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
        );
        if finished {
            st.streams.remove(&id);
        }
        Poll::Ready(Ok(()))
    }
}
