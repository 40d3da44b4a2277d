//! WebSocket transports: the k8s channel protocols (each message starts with its channel
//! number; base64 variants send text with the number as an ASCII digit) and the KEP-4006
//! tunnel (SPDY frames carried in binary messages).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::io::StreamReader;
use tokio_util::sync::{CancellationToken, PollSender};
use tokio_util::task::AbortOnDropHandle;

/// v5's "close this channel" message: `[255, channel]`.
const CLOSE_SIGNAL: u8 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Binary,
    Base64,
}

enum Out {
    Data(u8, Bytes),
    /// Ends the connection with a normal closure, which client-go reads as the end of
    /// every channel.
    Close,
}

/// Bytes the client sent on one channel; ends when the client closes the channel (v5) or
/// the connection.
pub type ChannelReader = StreamReader<ReceiverStream<io::Result<Bytes>>, Bytes>;

/// Writes become messages on one channel.
pub struct ChannelWriter {
    channel: u8,
    tx: PollSender<Out>,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if ready!(self.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let msg = Out::Data(self.channel, Bytes::copy_from_slice(buf));
        if self.tx.send_item(msg).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Channels are not closed one by one towards the client: client-go's demultiplexer
    /// knows no close signal and ends every channel when the connection closes.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A WebSocket split into numbered channels.
pub struct ChannelMux {
    tx: mpsc::Sender<Out>,
    readers: HashMap<u8, ChannelReader>,
    gone: CancellationToken,
    _reader: AbortOnDropHandle<()>,
    writer: AbortOnDropHandle<()>,
}

impl ChannelMux {
    /// `readable`: the channels the client may send on; `close_signals`: v5 semantics.
    pub fn new<S>(
        ws: WebSocketStream<S>,
        codec: Codec,
        readable: &[u8],
        close_signals: bool,
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, stream) = ws.split();
        let (tx, rx) = mpsc::channel::<Out>(64);
        let mut senders = HashMap::new();
        let mut readers = HashMap::new();
        for &ch in readable {
            let (stx, srx) = mpsc::channel::<io::Result<Bytes>>(16);
            senders.insert(ch, stx);
            readers.insert(ch, StreamReader::new(ReceiverStream::new(srx)));
        }
        let gone = CancellationToken::new();
        let reader = AbortOnDropHandle::new(tokio::spawn(read_loop(
            stream,
            codec,
            senders,
            close_signals,
            gone.clone(),
        )));
        let writer =
            AbortOnDropHandle::new(tokio::spawn(write_loop(sink, codec, rx, gone.clone())));
        ChannelMux {
            tx,
            readers,
            gone,
            _reader: reader,
            writer,
        }
    }

    pub fn reader(&mut self, channel: u8) -> Option<ChannelReader> {
        self.readers.remove(&channel)
    }

    pub fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter {
            channel,
            tx: PollSender::new(self.tx.clone()),
        }
    }

    /// Sends a message on `channel` (an empty one tells the client the session is up).
    pub async fn send(&self, channel: u8, data: Bytes) {
        // An error means the connection is gone, which `gone` reports.
        let _ = self.tx.send(Out::Data(channel, data)).await;
    }

    /// Cancelled once the client has closed the connection (or it broke).
    pub fn gone(&self) -> CancellationToken {
        self.gone.clone()
    }

    /// Sends what is queued, then a normal closure; waits a little for it to leave.
    pub async fn close(self) {
        let _ = self.tx.send(Out::Close).await;
        drop(self.tx);
        // Dropping the handles (here or with the mux) ends both tasks.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.writer).await;
    }
}

async fn read_loop<S>(
    mut stream: futures::stream::SplitStream<WebSocketStream<S>>,
    codec: Codec,
    mut senders: HashMap<u8, mpsc::Sender<io::Result<Bytes>>>,
    close_signals: bool,
    gone: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = stream.next().await {
        let frame: Bytes = match (msg, codec) {
            (Ok(Message::Binary(b)), _) => b,
            (Ok(Message::Text(t)), Codec::Base64) => Bytes::copy_from_slice(t.as_bytes()),
            (Ok(Message::Close(_)), _) | (Err(_), _) => break,
            _ => continue,
        };
        let Some((&first, rest)) = frame.split_first() else {
            continue;
        };
        if close_signals && first == CLOSE_SIGNAL {
            if let [ch] = rest {
                senders.remove(ch);
            }
            continue;
        }
        let (channel, data) = match codec {
            Codec::Binary => (first, frame.slice(1..)),
            Codec::Base64 => match STANDARD.decode(rest) {
                Ok(d) => (first.wrapping_sub(b'0'), Bytes::from(d)),
                Err(e) => {
                    tracing::debug!("websocket: invalid base64 on channel {first}: {e}");
                    continue;
                }
            },
        };
        if data.is_empty() {
            continue;
        }
        if let Some(tx) = senders.get(&channel)
            && tx.send(Ok(data)).await.is_err()
        {
            // The reading side was dropped: nobody wants this channel any more.
            senders.remove(&channel);
        }
    }
    drop(senders);
    gone.cancel();
}

async fn write_loop<S>(
    mut sink: futures::stream::SplitSink<WebSocketStream<S>, Message>,
    codec: Codec,
    mut rx: mpsc::Receiver<Out>,
    gone: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(out) = rx.recv().await {
        let msg = match out {
            Out::Data(ch, data) => match codec {
                Codec::Binary => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(ch);
                    frame.extend_from_slice(&data);
                    Message::Binary(frame.into())
                }
                Codec::Base64 => {
                    let mut text = String::with_capacity(data.len() * 4 / 3 + 5);
                    text.push(char::from(b'0'.wrapping_add(ch)));
                    STANDARD.encode_string(&data, &mut text);
                    Message::Text(text.into())
                }
            },
            Out::Close => break,
        };
        if sink.send(msg).await.is_err() {
            // The connection broke. The read loop may not notice: it can be blocked
            // handing stdin to a process that no longer reads it (stuck writing the output
            // nobody takes any more), so say it here, or the session would never end.
            gone.cancel();
            return;
        }
    }
    let _ = sink.send(normal_close()).await;
    let _ = sink.close().await;
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Carries a byte stream (the SPDY session of a KEP-4006 tunnel) over binary messages.
/// The returned end reads what the client sends and writes what goes back; the bridge
/// ends when either side closes.
pub fn tunnel<S>(ws: WebSocketStream<S>) -> (DuplexStream, JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let task = tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(ours);
        let up = async {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Binary(b)) => {
                        if wr.write_all(&b).await.is_err() {
                            break;
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = wr.shutdown().await;
        };
        let down = async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                        if sink.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
        };
        tokio::pin!(up);
        tokio::select! {
            _ = &mut up => {}
            _ = down => {
                // Let the client answer the closure, but do not wait on it forever.
                let _ = tokio::time::timeout(Duration::from_secs(5), up).await;
            }
        }
    });
    (theirs, task)
}
