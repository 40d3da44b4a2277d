//! Rewrites unusable HTTP/2 `:authority` values on the client → server byte stream.
//!
//! Go gRPC clients before 1.5x (older crictl and kubelets) send the unix socket path as
//! `:authority`, percent-encoded (`%2Frun%2Fberth%2Fberth.sock`) or raw. The `http` crate
//! under h2/tonic refuses such authorities and h2 resets the stream, so those clients
//! cannot talk to a tonic server at all. The authority carries no meaning on a unix socket,
//! so berthd replaces any value that is not a valid URI authority with `localhost` before
//! h2 sees it.
//!
//! HPACK is stateful: the client's encoder and our decoder share a dynamic table, and so do
//! our encoder and the server's decoder. So every header block is decoded and re-encoded,
//! not only the ones that change; all other frames pass through untouched.

use loona_hpack::{Decoder, Encoder};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may have: safe for every server.
const MAX_OUT_PAYLOAD: usize = 16_384;
/// Header blocks larger than this are refused (h2's own default limit is 16 KiB).
const MAX_BLOCK: usize = 1 << 20;
/// What an unusable authority becomes: what current crictl and kubelets send.
pub const REPLACEMENT: &[u8] = b"localhost";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthorityError {
    #[error("HTTP/2 header block could not be decoded: {0}")]
    Hpack(String),
    #[error("HTTP/2 frame sequence is malformed: {0}")]
    Protocol(&'static str),
}

enum Phase {
    /// Matching the connection preface; `usize` bytes matched so far.
    Preface(usize),
    Frames,
    /// Not HTTP/2 with prior knowledge: pass bytes on and let the server refuse them.
    Passthrough,
}

struct Pending {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

pub struct AuthorityFixer {
    phase: Phase,
    buf: Vec<u8>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
    pending: Option<Pending>,
    rewritten: u64,
}

impl Default for AuthorityFixer {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthorityFixer {
    pub fn new() -> Self {
        Self {
            phase: Phase::Preface(0),
            buf: Vec::new(),
            decoder: Decoder::new(),
            encoder: Encoder::new(),
            pending: None,
            rewritten: 0,
        }
    }

    /// How many `:authority` values were replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Consumes bytes read from the client and appends what the server should read to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthorityError> {
        if let Phase::Preface(matched) = self.phase {
            let n = (PREFACE.len() - matched).min(input.len());
            if input[..n] != PREFACE[matched..matched + n] {
                self.phase = Phase::Passthrough;
            } else {
                out.extend_from_slice(&input[..n]);
                input = &input[n..];
                self.phase = if matched + n == PREFACE.len() {
                    Phase::Frames
                } else {
                    Phase::Preface(matched + n)
                };
            }
        }
        match self.phase {
            Phase::Passthrough => {
                out.extend_from_slice(input);
                Ok(())
            }
            Phase::Preface(_) => Ok(()),
            Phase::Frames => {
                self.buf.extend_from_slice(input);
                self.frames(out)
            }
        }
    }

    fn frames(&mut self, out: &mut Vec<u8>) -> Result<(), AuthorityError> {
        let mut pos = 0;
        while self.buf.len() - pos >= FRAME_HEADER {
            let h = &self.buf[pos..pos + FRAME_HEADER];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let end = pos + FRAME_HEADER + len;
            if self.buf.len() < end {
                break;
            }
            let (kind, flags) = (h[3], h[4]);
            let stream_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            let payload = self.buf[pos + FRAME_HEADER..end].to_vec();
            match (kind, self.pending.is_some()) {
                (HEADERS, false) => self.headers(stream_id, flags, &payload, out)?,
                (CONTINUATION, true) => self.continuation(stream_id, flags, &payload, out)?,
                (CONTINUATION, false) => {
                    return Err(AuthorityError::Protocol("CONTINUATION without HEADERS"));
                }
                (_, true) => {
                    return Err(AuthorityError::Protocol(
                        "frame interleaved in a header block",
                    ));
                }
                _ => out.extend_from_slice(&self.buf[pos..end]),
            }
            pos = end;
        }
        self.buf.drain(..pos);
        Ok(())
    }

    fn headers(
        &mut self,
        stream_id: u32,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AuthorityError> {
        let mut data = payload;
        if flags & PADDED != 0 {
            let (&pad, rest) = data
                .split_first()
                .ok_or(AuthorityError::Protocol("empty padded HEADERS"))?;
            let keep = rest
                .len()
                .checked_sub(usize::from(pad))
                .ok_or(AuthorityError::Protocol("HEADERS padding exceeds payload"))?;
            data = &rest[..keep];
        }
        let mut priority = None;
        if flags & PRIORITY != 0 {
            if data.len() < 5 {
                return Err(AuthorityError::Protocol("short HEADERS priority"));
            }
            let mut p = [0u8; 5];
            p.copy_from_slice(&data[..5]);
            priority = Some(p);
            data = &data[5..];
        }
        let pending = Pending {
            stream_id,
            flags,
            priority,
            block: data.to_vec(),
        };
        if flags & END_HEADERS != 0 {
            self.emit(pending, out)
        } else {
            self.pending = Some(pending);
            Ok(())
        }
    }

    fn continuation(
        &mut self,
        stream_id: u32,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AuthorityError> {
        let Some(mut pending) = self.pending.take() else {
            return Err(AuthorityError::Protocol("CONTINUATION without HEADERS"));
        };
        if pending.stream_id != stream_id {
            return Err(AuthorityError::Protocol("CONTINUATION on another stream"));
        }
        if pending.block.len() + payload.len() > MAX_BLOCK {
            return Err(AuthorityError::Protocol("header block too large"));
        }
        pending.block.extend_from_slice(payload);
        if flags & END_HEADERS != 0 {
            self.emit(pending, out)
        } else {
            self.pending = Some(pending);
            Ok(())
        }
    }

    fn emit(&mut self, p: Pending, out: &mut Vec<u8>) -> Result<(), AuthorityError> {
        let mut headers = self
            .decoder
            .decode(&p.block)
            .map_err(|e| AuthorityError::Hpack(e.to_string()))?;
        for (name, value) in headers.iter_mut() {
            if name.as_slice() == b":authority" && !valid_authority(value) {
                *value = REPLACEMENT.to_vec();
                self.rewritten += 1;
            }
        }
        let block = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let prio_len = if p.priority.is_some() { 5 } else { 0 };
        let first_len = block.len().min(MAX_OUT_PAYLOAD - prio_len);
        let (first, mut rest) = block.split_at(first_len);
        let mut flags = p.flags & (END_STREAM | PRIORITY);
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        frame_header(out, prio_len + first.len(), HEADERS, flags, p.stream_id);
        if let Some(prio) = p.priority {
            out.extend_from_slice(&prio);
        }
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let n = rest.len().min(MAX_OUT_PAYLOAD);
            let (chunk, tail) = rest.split_at(n);
            let flags = if tail.is_empty() { END_HEADERS } else { 0 };
            frame_header(out, n, CONTINUATION, flags, p.stream_id);
            out.extend_from_slice(chunk);
            rest = tail;
        }
        Ok(())
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: u32) {
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// True when h2 (through the `http` crate) would accept this `:authority`.
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(enc: &mut Encoder<'static>, authority: &[u8], stream: u32) -> Vec<u8> {
        let block = enc.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/runtime.v1.RuntimeService/Version"),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
        ]);
        let mut f = Vec::new();
        frame_header(&mut f, block.len(), HEADERS, END_HEADERS, stream);
        f.extend_from_slice(&block);
        f
    }

    fn decode_all(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut dec = Decoder::new();
        let mut pos = PREFACE.len();
        let mut out = Vec::new();
        let mut block = Vec::new();
        while pos < bytes.len() {
            let len = (usize::from(bytes[pos]) << 16)
                | (usize::from(bytes[pos + 1]) << 8)
                | usize::from(bytes[pos + 2]);
            let (kind, flags) = (bytes[pos + 3], bytes[pos + 4]);
            let payload = &bytes[pos + 9..pos + 9 + len];
            if kind == HEADERS || kind == CONTINUATION {
                block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    out.push(dec.decode(&block).unwrap());
                    block.clear();
                }
            }
            pos += 9 + len;
        }
        out
    }

    fn authority_of(h: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        h.iter()
            .find(|(n, _)| n == b":authority")
            .unwrap()
            .1
            .clone()
    }

    #[test]
    fn replaces_socket_path_authorities_and_keeps_valid_ones() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        // a SETTINGS frame passes through
        frame_header(&mut input, 0, 0x4, 0, 0);
        input.extend(headers_frame(&mut enc, b"%2Frun%2Fberth%2Fberth.sock", 1));
        input.extend(headers_frame(&mut enc, b"/run/berth/berth.sock", 3));
        input.extend(headers_frame(&mut enc, b"localhost:1234", 5));
        input.extend(headers_frame(&mut enc, b"%2Frun%2Fberth%2Fberth.sock", 7));
        // feed in awkward pieces to exercise buffering
        let mut fixer = AuthorityFixer::new();
        let mut out = Vec::new();
        for chunk in input.chunks(7) {
            fixer.feed(chunk, &mut out).unwrap();
        }
        let blocks = decode_all(&out);
        let got: Vec<Vec<u8>> = blocks.iter().map(|h| authority_of(h)).collect();
        assert_eq!(
            got,
            vec![
                b"localhost".to_vec(),
                b"localhost".to_vec(),
                b"localhost:1234".to_vec(),
                b"localhost".to_vec()
            ]
        );
        assert_eq!(fixer.rewritten(), 3);
        assert_eq!(blocks[0].len(), 5, "other headers kept");
        assert_eq!(&out[..PREFACE.len()], PREFACE);
    }

    #[test]
    fn joins_continuations_and_strips_padding() {
        let mut enc = Encoder::new();
        let block = enc.encode([
            (&b":authority"[..], &b"%2Fx"[..]),
            (b"x-big", &[b'a'; 100][..]),
        ]);
        let (a, b) = block.split_at(10);
        let mut input = PREFACE.to_vec();
        // HEADERS, padded with 3 bytes, without END_HEADERS
        frame_header(&mut input, 1 + a.len() + 3, HEADERS, PADDED | END_STREAM, 1);
        input.push(3);
        input.extend_from_slice(a);
        input.extend_from_slice(&[0, 0, 0]);
        frame_header(&mut input, b.len(), CONTINUATION, END_HEADERS, 1);
        input.extend_from_slice(b);
        let mut fixer = AuthorityFixer::new();
        let mut out = Vec::new();
        fixer.feed(&input, &mut out).unwrap();
        let blocks = decode_all(&out);
        assert_eq!(blocks.len(), 1);
        assert_eq!(authority_of(&blocks[0]), b"localhost");
        assert_eq!(out[PREFACE.len() + 4], END_STREAM | END_HEADERS);
    }

    #[test]
    fn non_h2_bytes_pass_through() {
        let mut fixer = AuthorityFixer::new();
        let mut out = Vec::new();
        fixer.feed(b"GET / HTTP/1.1\r\n\r\n", &mut out).unwrap();
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn interleaved_frames_in_header_block_are_refused() {
        let mut input = PREFACE.to_vec();
        frame_header(&mut input, 1, HEADERS, 0, 1);
        input.push(0x82);
        frame_header(&mut input, 0, 0x0, 0, 1);
        let mut out = Vec::new();
        assert!(AuthorityFixer::new().feed(&input, &mut out).is_err());
    }
}
