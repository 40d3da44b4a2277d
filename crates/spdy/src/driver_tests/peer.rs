//! A hand-driven SPDY peer for the driver tests: raw frames in and out.

use super::*;
use http::HeaderValue;
use tokio::io::DuplexStream;

pub(super) const LIMIT: Duration = Duration::from_secs(10);

pub(super) struct RawPeer {
    pub(super) io: DuplexStream,
    comp: HeaderCompressor,
    dec: HeaderDecompressor,
}

impl RawPeer {
    pub(super) fn new(io: DuplexStream) -> RawPeer {
        RawPeer {
            io,
            comp: HeaderCompressor::new().expect("compressor"),
            dec: HeaderDecompressor::new(),
        }
    }

    pub(super) async fn send(&mut self, f: Frame) {
        let mut b = BytesMut::new();
        frame::encode(&f, &mut self.comp, &mut b).expect("encode");
        self.io.write_all(&b).await.expect("send");
    }

    pub(super) async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(LIMIT, read_frame(&mut self.io, &mut self.dec, 1 << 20))
            .await
            .expect("peer waited too long")
            .expect("frame")
    }

    /// The next frame that is not a WINDOW_UPDATE.
    pub(super) async fn recv_skipping_updates(&mut self) -> Option<Frame> {
        loop {
            match self.recv().await {
                Some(Frame::WindowUpdate { .. }) => continue,
                other => return other,
            }
        }
    }
}

pub(super) fn server_with_raw_peer(cfg: Config) -> (Session, Acceptor, RawPeer) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (s, acc) = spawn(b, cfg, true);
    (s, acc, RawPeer::new(a))
}

pub(super) fn syn(id: u32, flags: u8, kind: &'static str) -> Frame {
    let mut headers = HeaderMap::new();
    headers.insert("streamtype", HeaderValue::from_static(kind));
    Frame::SynStream {
        id,
        associated: 0,
        priority: 0,
        flags,
        headers,
    }
}
