//! SPDY/3 name/value header blocks: the plain encoding and its zlib compression.
//!
//! Each direction of a session has ONE zlib stream (a compressor on the sending side, a
//! decompressor on the receiving side) primed with the SPDY/3 dictionary; every header block
//! is one sync-flushed piece of that stream. So blocks must be compressed in exactly the order
//! the frames go on the wire, and every received block must be decompressed, even the block of a
//! frame we otherwise ignore, or the two zlib states drift apart.

use crate::dictionary::SPDY3_DICTIONARY;
use crate::error::Error;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Several values of one name travel as one value joined with NUL (SPDY/3 section 2.6.10).
const VALUE_SEPARATOR: u8 = 0;

/// The plain (uncompressed) block: u32 count, then per name: u32 length, name, u32 length,
/// value. Names are lowercase already (`http::HeaderName` guarantees it).
pub(crate) fn encode_block(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&(headers.keys_len() as u32).to_be_bytes());
    for name in headers.keys() {
        let mut value: Vec<u8> = Vec::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.push(VALUE_SEPARATOR);
            }
            value.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(&(name.as_str().len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(&value);
    }
    out
}

/// Parses a plain block. Uppercase names are rejected like Go's framer does (the spec makes
/// them a protocol error); a repeated name adds values.
pub(crate) fn decode_block(mut block: &[u8]) -> Result<HeaderMap, Error> {
    let bad = |what: &str| Error::Protocol(format!("header block: {what}"));
    let count = take_u32(&mut block).ok_or_else(|| bad("truncated count"))?;
    // Each entry needs at least 8 bytes, so a count the block cannot hold is a lie; checking
    // it first keeps a hostile count from making us reserve memory.
    if u64::from(count) * 8 > block.len() as u64 {
        return Err(bad("count larger than the block"));
    }
    let mut headers = HeaderMap::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_bytes(&mut block).ok_or_else(|| bad("truncated name"))?;
        if name.is_empty() {
            return Err(bad("empty header name"));
        }
        if name.iter().any(u8::is_ascii_uppercase) {
            return Err(bad("header name not lowercase"));
        }
        let value = take_bytes(&mut block).ok_or_else(|| bad("truncated value"))?;
        // SPDY allows names and values `http` cannot hold (":host", raw control bytes); no
        // Kubernetes peer sends them, so skip such entries instead of failing the session.
        let Ok(name) = HeaderName::from_bytes(name) else {
            let name = String::from_utf8_lossy(name);
            tracing::debug!(%name, "skipping a SPDY header name http cannot represent");
            continue;
        };
        for part in value.split(|b| *b == VALUE_SEPARATOR) {
            match HeaderValue::from_bytes(part) {
                Ok(v) => {
                    headers.append(name.clone(), v);
                }
                Err(_) => {
                    tracing::debug!(%name, "skipping a SPDY header value http cannot represent")
                }
            }
        }
    }
    if !block.is_empty() {
        return Err(bad("trailing bytes after the last header"));
    }
    Ok(headers)
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    *b = rest;
    Some(u32::from_be_bytes(*head))
}

fn take_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(b)? as usize;
    if b.len() < len {
        return None;
    }
    let (head, rest) = b.split_at(len);
    *b = rest;
    Some(head)
}

/// The sending side's zlib stream.
pub(crate) struct HeaderCompressor {
    z: Compress,
}

impl HeaderCompressor {
    pub(crate) fn new() -> Result<Self, Error> {
        // Go's framer uses BestCompression; the level only changes our output size, any level
        // decodes the same.
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(&SPDY3_DICTIONARY)
            .map_err(|e| Error::Compression(format!("setting the SPDY dictionary: {e}")))?;
        Ok(Self { z })
    }

    /// Compresses one header block, ending with a zlib sync flush so the peer can decode it
    /// without waiting for more.
    pub(crate) fn compress(&mut self, headers: &HeaderMap) -> Result<Vec<u8>, Error> {
        let raw = encode_block(headers);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.z.total_in();
        loop {
            let done = (self.z.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            self.z
                .compress_vec(&raw[done..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Compression(format!("compressing a header block: {e}")))?;
            // zlib's rule: the flush is complete once all input is taken and the call left
            // output space unused.
            if (self.z.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The receiving side's zlib stream.
pub(crate) struct HeaderDecompressor {
    z: Decompress,
}

impl HeaderDecompressor {
    pub(crate) fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses one block (at most `max` plain bytes) and parses it.
    pub(crate) fn decompress(&mut self, input: &[u8], max: usize) -> Result<HeaderMap, Error> {
        let raw = self.inflate(input, max)?;
        decode_block(&raw)
    }

    fn inflate(&mut self, input: &[u8], max: usize) -> Result<Vec<u8>, Error> {
        let start = self.z.total_in();
        let mut out = Vec::with_capacity((input.len() * 4).clamp(64, max.max(64)));
        loop {
            let done = (self.z.total_in() - start) as usize;
            let before = (done, out.len());
            match self
                .z
                .decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    return Err(Error::Compression(
                        "peer ended its header zlib stream".into(),
                    ));
                }
                Ok(_) => {}
                // The stream header names a preset dictionary: the first block of a session.
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(&SPDY3_DICTIONARY).map_err(|e| {
                        Error::Compression(format!("setting the SPDY dictionary: {e}"))
                    })?;
                    continue;
                }
                Err(e) => {
                    return Err(Error::Compression(format!(
                        "decompressing a header block: {e}"
                    )));
                }
            }
            let done = (self.z.total_in() - start) as usize;
            if out.len() > max {
                return Err(Error::Protocol(format!(
                    "header block larger than {max} bytes"
                )));
            }
            if done == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() == out.capacity() {
                out.reserve(1024);
            } else if (done, out.len()) == before {
                return Err(Error::Compression(
                    "header block does not end with a zlib sync flush".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
