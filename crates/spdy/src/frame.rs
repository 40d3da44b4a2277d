//! SPDY/3 frames: the wire layout, encoding and decoding (no I/O here).
//!
//! Control frame: `1 | version(15) | type(16) | flags(8) | length(24) | payload`.
//! Data frame:    `0 | stream id(31) | flags(8) | length(24) | data`.

use crate::error::Error;
use crate::headers::{HeaderCompressor, HeaderDecompressor};
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;

pub(crate) const VERSION: u16 = 3;
pub(crate) const HEADER_LEN: usize = 8;
/// Lengths are 24 bits.
pub(crate) const MAX_LENGTH: usize = (1 << 24) - 1;

pub(crate) const TYPE_SYN_STREAM: u16 = 1;
pub(crate) const TYPE_SYN_REPLY: u16 = 2;
pub(crate) const TYPE_RST_STREAM: u16 = 3;
pub(crate) const TYPE_SETTINGS: u16 = 4;
pub(crate) const TYPE_PING: u16 = 6;
pub(crate) const TYPE_GOAWAY: u16 = 7;
pub(crate) const TYPE_HEADERS: u16 = 8;
pub(crate) const TYPE_WINDOW_UPDATE: u16 = 9;

/// FLAG_FIN, on control frames and on DATA frames.
pub(crate) const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM only: the recipient may not send on this stream.
pub(crate) const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here.
pub(crate) const RST_PROTOCOL_ERROR: u32 = 1;
pub(crate) const RST_REFUSED_STREAM: u32 = 3;
pub(crate) const RST_CANCEL: u32 = 5;

/// GOAWAY status codes.
pub(crate) const GOAWAY_OK: u32 = 0;
pub(crate) const GOAWAY_PROTOCOL_ERROR: u32 = 1;

const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    SynStream {
        id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: HeaderMap,
    },
    SynReply {
        id: u32,
        flags: u8,
        headers: HeaderMap,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    /// Settings are parsed (to validate the frame) but not acted on.
    Settings(Vec<(u8, u32, u32)>),
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        id: u32,
        flags: u8,
        headers: HeaderMap,
    },
    WindowUpdate {
        id: u32,
        delta: u32,
    },
    Data {
        id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame type SPDY/3 does not define (or CREDENTIAL): skipped, as the spec says.
    Unknown(u16),
}

/// The first 8 bytes of a frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// `Some(type)` for control frames, `None` for DATA.
    pub(crate) control: Option<u16>,
    pub(crate) version: u16,
    /// DATA frames: the stream id.
    pub(crate) stream_id: u32,
    pub(crate) flags: u8,
    pub(crate) length: usize,
}

impl Head {
    pub(crate) fn parse(b: [u8; HEADER_LEN]) -> Head {
        let first = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let second = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let flags = (second >> 24) as u8;
        let length = (second & 0x00ff_ffff) as usize;
        if first & 0x8000_0000 != 0 {
            Head {
                control: Some((first & 0xffff) as u16),
                version: ((first >> 16) & 0x7fff) as u16,
                stream_id: 0,
                flags,
                length,
            }
        } else {
            Head {
                control: None,
                version: VERSION,
                stream_id: first,
                flags,
                length,
            }
        }
    }
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Decodes a frame's payload. `max_headers` bounds a decompressed header block.
pub(crate) fn decode(
    head: Head,
    payload: Bytes,
    dec: &mut HeaderDecompressor,
    max_headers: usize,
) -> Result<Frame, Error> {
    let Some(kind) = head.control else {
        if head.stream_id == 0 {
            return Err(Error::Protocol("DATA frame on stream 0".into()));
        }
        return Ok(Frame::Data {
            id: head.stream_id,
            flags: head.flags,
            data: payload,
        });
    };
    if head.version != VERSION {
        return Err(Error::Protocol(format!(
            "control frame of SPDY version {}, expected {VERSION}",
            head.version
        )));
    }
    let p = &payload[..];
    let need = |n: usize, what: &str| {
        if p.len() < n {
            Err(Error::Protocol(format!(
                "{what} frame of {} bytes, needs at least {n}",
                p.len()
            )))
        } else {
            Ok(())
        }
    };
    let exact = |n: usize, what: &str| {
        if p.len() != n {
            Err(Error::Protocol(format!(
                "{what} frame of {} bytes, must be {n}",
                p.len()
            )))
        } else {
            Ok(())
        }
    };
    let nonzero = |id: u32, what: &str| {
        if id == 0 {
            Err(Error::Protocol(format!("{what} frame for stream 0")))
        } else {
            Ok(id)
        }
    };
    Ok(match kind {
        TYPE_SYN_STREAM => {
            need(10, "SYN_STREAM")?;
            let id = nonzero(u32_at(p, 0) & STREAM_ID_MASK, "SYN_STREAM")?;
            let headers = dec.decompress(&p[10..], max_headers)?;
            Frame::SynStream {
                id,
                associated: u32_at(p, 4) & STREAM_ID_MASK,
                priority: p[8] >> 5,
                flags: head.flags,
                headers,
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            let what = if kind == TYPE_SYN_REPLY {
                "SYN_REPLY"
            } else {
                "HEADERS"
            };
            need(4, what)?;
            // Decompress before validating the id so the zlib stream stays in step.
            let headers = dec.decompress(&p[4..], max_headers)?;
            let id = nonzero(u32_at(p, 0) & STREAM_ID_MASK, what)?;
            if kind == TYPE_SYN_REPLY {
                Frame::SynReply {
                    id,
                    flags: head.flags,
                    headers,
                }
            } else {
                Frame::Headers {
                    id,
                    flags: head.flags,
                    headers,
                }
            }
        }
        TYPE_RST_STREAM => {
            exact(8, "RST_STREAM")?;
            let status = u32_at(p, 4);
            if status == 0 {
                return Err(Error::Protocol("RST_STREAM with status 0".into()));
            }
            Frame::RstStream {
                id: nonzero(u32_at(p, 0) & STREAM_ID_MASK, "RST_STREAM")?,
                status,
            }
        }
        TYPE_SETTINGS => {
            need(4, "SETTINGS")?;
            let n = u32_at(p, 0) as usize;
            if p.len() != 4 + n.saturating_mul(8) {
                return Err(Error::Protocol(format!(
                    "SETTINGS frame of {} bytes for {n} entries",
                    p.len()
                )));
            }
            let entries = (0..n)
                .map(|i| {
                    let at = 4 + i * 8;
                    let fid = u32_at(p, at);
                    ((fid >> 24) as u8, fid & 0x00ff_ffff, u32_at(p, at + 4))
                })
                .collect();
            Frame::Settings(entries)
        }
        TYPE_PING => {
            exact(4, "PING")?;
            Frame::Ping(u32_at(p, 0))
        }
        TYPE_GOAWAY => {
            exact(8, "GOAWAY")?;
            Frame::GoAway {
                last_good: u32_at(p, 0) & STREAM_ID_MASK,
                status: u32_at(p, 4),
            }
        }
        TYPE_WINDOW_UPDATE => {
            exact(8, "WINDOW_UPDATE")?;
            Frame::WindowUpdate {
                id: u32_at(p, 0) & STREAM_ID_MASK,
                delta: u32_at(p, 4) & STREAM_ID_MASK,
            }
        }
        other => Frame::Unknown(other),
    })
}

fn control_head(out: &mut BytesMut, kind: u16, flags: u8, length: usize) -> Result<(), Error> {
    if length > MAX_LENGTH {
        return Err(Error::HeadersTooLarge(length));
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | length as u32);
    Ok(())
}

/// Appends the wire form of `frame` to `out`, compressing header blocks with `comp`.
pub(crate) fn encode(
    frame: &Frame,
    comp: &mut HeaderCompressor,
    out: &mut BytesMut,
) -> Result<(), Error> {
    match frame {
        Frame::SynStream {
            id,
            associated,
            priority,
            flags,
            headers,
        } => {
            let block = comp.compress(headers)?;
            control_head(out, TYPE_SYN_STREAM, *flags, 10 + block.len())?;
            out.put_u32(*id & STREAM_ID_MASK);
            out.put_u32(*associated & STREAM_ID_MASK);
            out.put_u8(priority << 5);
            out.put_u8(0); // slot
            out.put_slice(&block);
        }
        Frame::SynReply { id, flags, headers } | Frame::Headers { id, flags, headers } => {
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                TYPE_SYN_REPLY
            } else {
                TYPE_HEADERS
            };
            let block = comp.compress(headers)?;
            control_head(out, kind, *flags, 4 + block.len())?;
            out.put_u32(*id & STREAM_ID_MASK);
            out.put_slice(&block);
        }
        Frame::RstStream { id, status } => {
            control_head(out, TYPE_RST_STREAM, 0, 8)?;
            out.put_u32(*id & STREAM_ID_MASK);
            out.put_u32(*status);
        }
        Frame::Settings(entries) => {
            control_head(out, TYPE_SETTINGS, 0, 4 + entries.len() * 8)?;
            out.put_u32(entries.len() as u32);
            for (flags, id, value) in entries {
                out.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                out.put_u32(*value);
            }
        }
        Frame::Ping(id) => {
            control_head(out, TYPE_PING, 0, 4)?;
            out.put_u32(*id);
        }
        Frame::GoAway { last_good, status } => {
            control_head(out, TYPE_GOAWAY, 0, 8)?;
            out.put_u32(*last_good & STREAM_ID_MASK);
            out.put_u32(*status);
        }
        Frame::WindowUpdate { id, delta } => {
            control_head(out, TYPE_WINDOW_UPDATE, 0, 8)?;
            out.put_u32(*id & STREAM_ID_MASK);
            out.put_u32(*delta & STREAM_ID_MASK);
        }
        Frame::Data { id, flags, data } => {
            if data.len() > MAX_LENGTH {
                return Err(Error::Protocol(format!(
                    "DATA frame of {} bytes exceeds the 24-bit length",
                    data.len()
                )));
            }
            out.put_u32(*id & STREAM_ID_MASK);
            out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
            out.put_slice(data);
        }
        Frame::Unknown(kind) => {
            control_head(out, *kind, 0, 0)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
