use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

#[test]
fn plain_block_layout() {
    let raw = encode_block(&map(&[("streamtype", "error")]));
    let mut want = vec![0, 0, 0, 1, 0, 0, 0, 10];
    want.extend_from_slice(b"streamtype");
    want.extend_from_slice(&[0, 0, 0, 5]);
    want.extend_from_slice(b"error");
    assert_eq!(raw, want);
    assert_eq!(
        decode_block(&raw).expect("decode"),
        map(&[("streamtype", "error")])
    );
}

#[test]
fn compressed_round_trip_over_one_zlib_stream() {
    let mut c = HeaderCompressor::new().expect("compressor");
    let mut d = HeaderDecompressor::new();
    let blocks = [
        map(&[("streamtype", "error")]),
        map(&[("streamtype", "stdout"), ("x-multi", "a"), ("x-multi", "b")]),
        HeaderMap::new(),
        map(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
    ];
    for b in &blocks {
        let z = c.compress(b).expect("compress");
        assert_eq!(&d.decompress(&z, 1 << 16).expect("decompress"), b);
    }
}

#[test]
fn unrepresentable_entries_are_skipped_and_bad_blocks_rejected() {
    let mut raw = vec![0, 0, 0, 2];
    for (k, v) in [(&b":version"[..], &b"HTTP/1.1"[..]), (b"port", b"80")] {
        raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
        raw.extend_from_slice(k);
        raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
        raw.extend_from_slice(v);
    }
    assert_eq!(decode_block(&raw).expect("decode"), map(&[("port", "80")]));
    // Uppercase names are a protocol error (as in Go's framer).
    let mut upper = raw.clone();
    upper[4 + 4 + 1] = b'V';
    assert!(decode_block(&upper).is_err());
    // Truncated and oversized counts.
    assert!(decode_block(&raw[..raw.len() - 1]).is_err());
    assert!(decode_block(&[0xff, 0xff, 0xff, 0xff]).is_err());
}
