use super::*;

#[test]
fn ping_wire_bytes() {
    let mut c = HeaderCompressor::new().expect("compressor");
    let mut out = BytesMut::new();
    encode(&Frame::Ping(1), &mut c, &mut out).expect("encode");
    assert_eq!(&out[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
}
