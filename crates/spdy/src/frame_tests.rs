use super::*;
use http::HeaderValue;

#[test]
fn ping_wire_bytes() {
    let mut c = HeaderCompressor::new().expect("compressor");
    let mut out = BytesMut::new();
    encode(&Frame::Ping(1), &mut c, &mut out).expect("encode");
    assert_eq!(&out[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
}

fn round_trip(frames: &[Frame]) -> Vec<Frame> {
    let mut c = HeaderCompressor::new().expect("compressor");
    let mut d = HeaderDecompressor::new();
    let mut out = BytesMut::new();
    for f in frames {
        encode(f, &mut c, &mut out).expect("encode");
    }
    let mut got = Vec::new();
    let mut b = out.freeze();
    while !b.is_empty() {
        let head: [u8; HEADER_LEN] = b[..HEADER_LEN].try_into().expect("head");
        let head = Head::parse(head);
        let payload = b.slice(HEADER_LEN..HEADER_LEN + head.length);
        got.push(decode(head, payload, &mut d, 1 << 20).expect("decode"));
        b = b.slice(HEADER_LEN + head.length..);
    }
    got
}

#[test]
fn every_frame_type_round_trips() {
    let mut h = HeaderMap::new();
    h.insert("streamtype", HeaderValue::from_static("resize"));
    let frames = vec![
        Frame::SynStream {
            id: 7,
            associated: 5,
            priority: 3,
            flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
            headers: h.clone(),
        },
        Frame::SynReply {
            id: 7,
            flags: FLAG_FIN,
            headers: HeaderMap::new(),
        },
        Frame::Headers {
            id: 7,
            flags: 0,
            headers: h,
        },
        Frame::RstStream {
            id: 7,
            status: RST_REFUSED_STREAM,
        },
        Frame::Settings(vec![(1, 4, 100), (0, 7, 65536)]),
        Frame::Ping(2),
        Frame::GoAway {
            last_good: 7,
            status: GOAWAY_PROTOCOL_ERROR,
        },
        Frame::WindowUpdate {
            id: 0,
            delta: 32768,
        },
        Frame::Data {
            id: 9,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"xyz"),
        },
        Frame::Unknown(10),
    ];
    assert_eq!(round_trip(&frames), frames);
}

#[test]
fn malformed_control_frames_are_protocol_errors() {
    let mut d = HeaderDecompressor::new();
    let bad = |kind: u16, payload: &[u8], d: &mut HeaderDecompressor| {
        let head = Head {
            control: Some(kind),
            version: VERSION,
            stream_id: 0,
            flags: 0,
            length: payload.len(),
        };
        decode(head, Bytes::copy_from_slice(payload), d, 1 << 20)
    };
    assert!(
        bad(TYPE_RST_STREAM, &[0, 0, 0, 1, 0, 0, 0, 0], &mut d).is_err(),
        "status 0"
    );
    assert!(
        bad(TYPE_RST_STREAM, &[0, 0, 0, 0, 0, 0, 0, 1], &mut d).is_err(),
        "stream 0"
    );
    assert!(
        bad(TYPE_GOAWAY, &[0, 0, 0, 1], &mut d).is_err(),
        "short GOAWAY"
    );
    assert!(
        bad(TYPE_SETTINGS, &[0, 0, 0, 2, 0, 0, 0, 1], &mut d).is_err(),
        "short SETTINGS"
    );
    assert!(
        bad(TYPE_SYN_STREAM, &[0, 0, 0, 1], &mut d).is_err(),
        "short SYN_STREAM"
    );
    let v2 = Head {
        control: Some(TYPE_PING),
        version: 2,
        stream_id: 0,
        flags: 0,
        length: 4,
    };
    assert!(decode(v2, Bytes::from_static(&[0, 0, 0, 1]), &mut d, 1 << 20).is_err());
    let data0 = Head {
        control: None,
        version: VERSION,
        stream_id: 0,
        flags: 0,
        length: 0,
    };
    assert!(
        decode(data0, Bytes::new(), &mut d, 1 << 20).is_err(),
        "DATA on stream 0"
    );
}
