//! The task driving a session: a reader (frames in → stream buffers, accept queue), a writer
//! (queued frames out, header compression in wire order) and an optional pinger, joined in one
//! spawned task that ends when the session does and then drops the connection.

use crate::Config;
use crate::error::Error;
use crate::frame::{
    self, FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, GOAWAY_PROTOCOL_ERROR, HEADER_LEN, Head,
    RST_PROTOCOL_ERROR, RST_REFUSED_STREAM,
};
use crate::headers::{HeaderCompressor, HeaderDecompressor};
use crate::session::{Acceptor, Session, Shared};
use crate::stream::{Deliver, Remote, Stream, StreamShared};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, trace, warn};

pub(crate) fn spawn<T>(io: T, cfg: Config, is_server: bool) -> (Session, Acceptor)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(cfg.accept_backlog.max(1));
    let shared = Arc::new(Shared::new(cfg, is_server));
    let (r, w) = tokio::io::split(io);
    let task = shared.clone();
    let span = tracing::debug_span!("spdy", server = is_server);
    tokio::spawn(
        async move {
            let reader = read_side(BufReader::with_capacity(64 << 10, r), task.clone(), tx);
            tokio::join!(reader, write_side(w, task.clone()), ping_loop(task.clone()));
            task.end();
            task.finished.send_replace(true);
            debug!("session finished");
        }
        .instrument(span),
    );
    let guard = shared.new_guard();
    (
        Session {
            shared: shared.clone(),
            guard: guard.clone(),
        },
        Acceptor {
            rx,
            shared,
            _guard: guard,
        },
    )
}

async fn read_side<R: AsyncRead + Unpin>(r: R, shared: Arc<Shared>, tx: mpsc::Sender<Stream>) {
    let mut ended = shared.ended.subscribe();
    let result = tokio::select! {
        res = read_loop(r, &shared, &tx) => res,
        _ = ended.wait_for(|e| *e) => return,
    };
    match result {
        Ok(()) => debug!("peer closed the connection"),
        Err(e @ (Error::Protocol(_) | Error::Compression(_))) => {
            warn!(error = %e, "ending the SPDY session");
            {
                let mut st = shared.lock();
                if !st.goaway_sent {
                    st.goaway_sent = true;
                    let last_good = st.last_peer_id;
                    shared.push(
                        &mut st,
                        Frame::GoAway {
                            last_good,
                            status: GOAWAY_PROTOCOL_ERROR,
                        },
                    );
                }
                st.closing = true;
            }
            shared.writer_wake.notify_one();
            let mut done = shared.writer_done.subscribe();
            let _ = tokio::time::timeout(shared.cfg.close_timeout, done.wait_for(|d| *d)).await;
        }
        Err(e) => debug!(error = %e, "connection read failed"),
    }
    shared.end();
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Stream>,
) -> Result<(), Error> {
    let mut dec = HeaderDecompressor::new();
    while let Some(frame) = read_frame(&mut r, &mut dec, shared.cfg.max_header_block).await? {
        trace!(?frame, "frame in");
        handle(frame, shared, tx).await?;
    }
    Ok(())
}

/// Reads one frame; `None` on EOF at a frame boundary.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    dec: &mut HeaderDecompressor,
    max_headers: usize,
) -> Result<Option<Frame>, Error> {
    let mut head = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = r.read(&mut head[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(Error::Protocol(
                "connection ended inside a frame header".into(),
            ));
        }
        filled += n;
    }
    let head = Head::parse(head);
    let mut payload = vec![0u8; head.length];
    r.read_exact(&mut payload).await?;
    frame::decode(head, Bytes::from(payload), dec, max_headers).map(Some)
}

async fn handle(
    frame: Frame,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Stream>,
) -> Result<(), Error> {
    match frame {
        Frame::SynStream {
            id, flags, headers, ..
        } => on_syn_stream(id, flags, headers, shared, tx).await,
        Frame::SynReply { id, flags, .. } => {
            let mut st = shared.lock();
            if let Some(reply) = st.pending_opens.remove(&id) {
                let _ = reply.send(Ok(()));
                if flags & FLAG_FIN != 0 {
                    remote_finished(&mut st, id, Remote::Fin);
                }
            }
        }
        Frame::Headers { id, flags, .. } => {
            if flags & FLAG_FIN != 0 {
                remote_finished(&mut shared.lock(), id, Remote::Fin);
            }
        }
        Frame::RstStream { id, status } => {
            let mut st = shared.lock();
            if let Some(s) = st.streams.remove(&id) {
                s.remote_ended(Remote::Reset(status));
            }
            if let Some(reply) = st.pending_opens.remove(&id) {
                let _ = reply.send(Err(Error::Reset { id, status }));
            }
        }
        Frame::Ping(id) => {
            let ours = if shared.is_server { 0 } else { 1 };
            if id & 1 != ours {
                shared.push_now(Frame::Ping(id));
            }
        }
        Frame::GoAway { last_good, status } => {
            debug!(last_good, status, "peer sent GOAWAY");
            let mut st = shared.lock();
            st.goaway_received = true;
            // Streams we opened after last_good were never seen by the peer.
            let unseen: Vec<u32> = st
                .pending_opens
                .keys()
                .copied()
                .filter(|id| *id > last_good)
                .collect();
            for id in unseen {
                if let Some(reply) = st.pending_opens.remove(&id) {
                    let _ = reply.send(Err(Error::GoneAway));
                }
                if let Some(s) = st.streams.remove(&id) {
                    s.remote_ended(Remote::Gone);
                }
            }
        }
        Frame::Data { id, flags, data } => on_data(id, flags, data, shared).await,
        // Flow control: see the crate docs; the Go peer never sends WINDOW_UPDATE anyway.
        Frame::WindowUpdate { .. } | Frame::Settings(_) | Frame::Unknown(_) => {}
    }
    Ok(())
}

fn remote_finished(st: &mut crate::session::State, id: u32, how: Remote) {
    if let Some(s) = st.streams.get(&id)
        && s.remote_ended(how)
    {
        st.streams.remove(&id);
    }
}

async fn on_syn_stream(
    id: u32,
    flags: u8,
    headers: HeaderMap,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Stream>,
) {
    let stream = {
        let mut st = shared.lock();
        // Like spdystream: after GOAWAY new streams are silently ignored.
        if st.closing || st.goaway_sent || st.ended {
            return;
        }
        // Clients open odd ids, servers even ones.
        let from_peer = id.is_multiple_of(2) != shared.is_server;
        if !from_peer || id <= st.last_peer_id {
            debug!(
                id,
                last = st.last_peer_id,
                "SYN_STREAM with an invalid stream id"
            );
            shared.push(
                &mut st,
                Frame::RstStream {
                    id,
                    status: RST_PROTOCOL_ERROR,
                },
            );
            return;
        }
        st.last_peer_id = id;
        if tx.is_closed() {
            shared.push(
                &mut st,
                Frame::RstStream {
                    id,
                    status: RST_REFUSED_STREAM,
                },
            );
            return;
        }
        let remote = if flags & FLAG_FIN != 0 {
            Remote::Fin
        } else {
            Remote::Open
        };
        let s = Arc::new(StreamShared::new(
            id,
            remote,
            flags & FLAG_UNIDIRECTIONAL != 0,
        ));
        if !s.finished() {
            st.streams.insert(id, s.clone());
        }
        shared.push(
            &mut st,
            Frame::SynReply {
                id,
                flags: 0,
                headers: HeaderMap::new(),
            },
        );
        Stream::new(s, shared.clone(), headers, shared.guard())
    };
    if let Err(mpsc::error::SendError(stream)) = tx.send(stream).await {
        stream.refuse();
    }
}

async fn on_data(id: u32, flags: u8, data: Bytes, shared: &Arc<Shared>) {
    let fin = flags & FLAG_FIN != 0;
    loop {
        let Some(s) = shared.lock().streams.get(&id).cloned() else {
            // Unknown or already forgotten (we reset it; frames may still be in flight).
            return;
        };
        // A bound of 0 would never admit data; 1 means "one frame at a time".
        match s.deliver(&data, fin, shared.cfg.stream_buffer.max(1)) {
            Deliver::Done { finished } => {
                if finished {
                    shared.lock().streams.remove(&id);
                }
                return;
            }
            Deliver::Discard => return,
            // Backpressure: stop reading the connection until the application reads.
            Deliver::Full => s.space.notified().await,
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(mut w: W, shared: Arc<Shared>) {
    let mut comp = match HeaderCompressor::new() {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(error = %e, "cannot start the header compressor");
            shared.end();
            None
        }
    };
    let mut ended = shared.ended.subscribe();
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut batch = Vec::new();
    while let Some(comp) = comp.as_mut() {
        let exit = {
            let mut st = shared.lock();
            if st.ended {
                true
            } else {
                batch.extend(st.out.drain(..));
                st.out_data = 0;
                for waker in st.write_waiters.drain(..) {
                    waker.wake();
                }
                batch.is_empty() && st.closing
            }
        };
        if exit {
            break;
        }
        if batch.is_empty() {
            tokio::select! {
                _ = shared.writer_wake.notified() => {}
                _ = ended.wait_for(|e| *e) => {}
            }
            continue;
        }
        let mut failed = None;
        for f in batch.drain(..) {
            trace!(frame = ?f, "frame out");
            if let Err(e) = frame::encode(&f, comp, &mut buf) {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            // The compressor may now be ahead of the peer's decompressor: unrecoverable.
            warn!(error = %e, "cannot encode a frame; ending the SPDY session");
            shared.end();
            break;
        }
        let res = tokio::select! {
            r = async { w.write_all(&buf).await?; w.flush().await } => r,
            _ = ended.wait_for(|e| *e) => break,
        };
        buf.clear();
        if let Err(e) = res {
            debug!(error = %e, "connection write failed");
            shared.end();
            break;
        }
    }
    shared.writer_done.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
    if !shared.is_ended() {
        // Graceful close: GOAWAY and our FIN are out. Keep reading until the peer closes
        // (bounded by close_timeout) instead of dropping the socket now: closing a TCP socket
        // with unread input (e.g. the peer's WINDOW_UPDATEs) makes the kernel send RST, and a
        // RST can destroy data the peer has not read yet.
        let linger = async move {
            let _ = ended.wait_for(|e| *e).await;
        };
        let _ = tokio::time::timeout(shared.cfg.close_timeout, linger).await;
    }
    shared.end();
}

async fn ping_loop(shared: Arc<Shared>) {
    let Some(every) = shared.cfg.ping_interval else {
        return;
    };
    let mut ended = shared.ended.subscribe();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut st = shared.lock();
                let id = st.next_ping;
                // Keep the parity (server even, client odd) when wrapping, like spdystream.
                st.next_ping = if id > 0x7fff_fffe { id - 0x7fff_fffe } else { id + 2 };
                shared.push(&mut st, Frame::Ping(id));
            }
            _ = ended.wait_for(|e| *e) => return,
        }
    }
}

#[cfg(test)]
#[path = "driver_tests/mod.rs"]
mod tests;
