//! `frame_decode`, `mask` and `utf8`: the byte-level codecs.

use std::time::Instant;

use arbitrary::Unstructured;
use crest_proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crest_proto::utf8::Validator;
use crest_proto::{
    apply_mask, apply_mask_reference, CloseCode, CloseFrame, Config, Connection, Error, Event, ProtocolError, Role,
};

use crate::drain;

/// The `frame_decode` target body.
pub fn frame_decode(data: &[u8]) {
    match FrameHeader::decode(data) {
        Ok(None) => assert!(data.len() < MAX_HEADER_LEN, "need more after 14 bytes"),
        Ok(Some((h, n))) => {
            let ext = match data[1] & 0x7F {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let key = if h.mask.is_some() { 4 } else { 0 };
            assert_eq!(n, 2 + ext + key, "header length");
            assert!(h.payload_len >> 63 == 0, "a length with the top bit set");
            assert_eq!(h.rsv & !0x70, 0, "RSV outside its bits");
            if h.opcode.is_control() {
                assert!(h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64);
            }
            // The answer depends on the header's bytes alone, and every
            // shorter prefix needs more.
            assert_eq!(FrameHeader::decode(&data[..n]), Ok(Some((h, n))));
            for k in 0..n {
                assert_eq!(FrameHeader::decode(&data[..k]), Ok(None), "prefix {k}");
            }
            // Encoding decodes back; a minimally encoded length re-encodes
            // to the very same bytes.
            let mut out = [0u8; MAX_HEADER_LEN];
            let m = h.encode(&mut out);
            assert_eq!(FrameHeader::decode(&out[..m]), Ok(Some((h, m))));
            let minimal = match ext {
                0 => true,
                2 => h.payload_len >= 126,
                _ => h.payload_len > 0xFFFF,
            };
            if minimal {
                assert_eq!(&out[..m], &data[..n], "re-encoding");
            }
            limits_come_first(h, &data[..n]);
        }
        Err(e) => {
            // Errors are final: later bytes cannot undo them.
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0xFF; MAX_HEADER_LEN]);
            assert_eq!(FrameHeader::decode(&longer), Err(e.clone()));
            assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }
}

/// An open connection rejects a frame whose header announces more than
/// its limits the moment the header is complete: lengths are checked
/// before any payload is buffered.
fn limits_come_first(h: FrameHeader, header: &[u8]) {
    // Masked frames are what a server receives, unmasked what a client does.
    let role = if h.mask.is_some() { Role::Server } else { Role::Client };
    let config = Config { max_frame_size: 100, max_message_size: 60, ..Config::default() };
    let now = Instant::now();
    let mut conn = Connection::open(role, config, now);
    conn.receive(now, header);
    let events = drain(&mut conn);
    assert_eq!(events.first(), Some(&Event::Open));
    let too_big = |e: ProtocolError| {
        vec![
            Event::Open,
            Event::Error(Error::Protocol(e)),
            Event::Closed(CloseFrame::new(CloseCode::MESSAGE_TOO_BIG, "")),
        ]
    };
    if h.rsv == 0 && h.payload_len > 100 {
        let e = ProtocolError::FrameTooLarge { size: h.payload_len, limit: 100 };
        assert_eq!(events, too_big(e));
    } else if h.rsv == 0 && h.payload_len > 60 && matches!(h.opcode, OpCode::Text | OpCode::Binary) {
        let e = ProtocolError::MessageTooLarge { size: h.payload_len, limit: 60 };
        assert_eq!(events, too_big(e));
    }
    assert!(conn.buffered_len() <= header.len());
}

/// The `mask` target body: `[key: 4][offset: 8][cut: 2][payload...]`.
pub fn mask(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(key), Ok(offset), Ok(cut)) = (u.arbitrary::<[u8; 4]>(), u.arbitrary::<usize>(), u.arbitrary::<u16>())
    else {
        return;
    };
    let payload = u.take_rest();
    let check = |data: &[u8], offset: usize| {
        let mut fast = data.to_vec();
        let mut slow = data.to_vec();
        apply_mask(&mut fast, key, offset);
        apply_mask_reference(&mut slow, key, offset);
        assert_eq!(fast, slow, "len {} offset {offset}", data.len());
        fast
    };
    let masked = check(payload, offset);
    // Every length up to 64, at four key phases.
    for len in 0..=payload.len().min(64) {
        for phase in 0..4 {
            check(&payload[..len], offset.wrapping_add(phase));
        }
    }
    // Every start (alignment) in the first 16 bytes: a tail masked at its
    // own offset equals the tail of the whole.
    for start in 0..payload.len().min(16) {
        let tail = check(&payload[start..], offset.wrapping_add(start));
        assert_eq!(tail, masked[start..], "tail from {start}");
    }
    // In two pieces equals at once; twice is the identity.
    let cut = usize::from(cut) % (payload.len() + 1);
    let mut pieces = payload.to_vec();
    apply_mask(&mut pieces[..cut], key, offset);
    apply_mask(&mut pieces[cut..], key, offset.wrapping_add(cut));
    assert_eq!(pieces, masked, "cut at {cut}");
    let mut twice = masked;
    apply_mask(&mut twice, key, offset);
    assert_eq!(twice, payload);
}

/// The `utf8` target body: `[n][n piece sizes][bytes...]`, `n` taken mod 8;
/// the rest after the sized pieces is the last piece.
pub fn utf8(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8);
    if rest.len() < n {
        return;
    }
    let (sizes, bytes) = rest.split_at(n);
    let mut pieces = Vec::new();
    let mut left = bytes;
    for &s in sizes {
        let (piece, tail) = left.split_at(usize::from(s).min(left.len()));
        pieces.push(piece);
        left = tail;
    }
    pieces.push(left);
    let expected = std::str::from_utf8(bytes).is_ok();
    assert_eq!(validate(bytes, &pieces, true), expected, "split {sizes:?}");
    assert_eq!(validate(bytes, &[bytes], true), expected, "whole");
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(validate(bytes, &bytewise, bytes.len() <= 512), expected, "byte by byte");
}

/// Feeds `pieces` (which concatenate to `bytes`); with `strict`, checks after
/// every piece that the validator fails exactly when the prefix so far can no
/// longer become UTF-8 (fail fast, never early) and is complete exactly when
/// the prefix is UTF-8.
fn validate(bytes: &[u8], pieces: &[&[u8]], strict: bool) -> bool {
    let mut v = Validator::new();
    let mut fed = 0;
    for piece in pieces {
        let result = v.feed(piece);
        fed += piece.len();
        if strict {
            let prefix = std::str::from_utf8(&bytes[..fed]);
            let viable = prefix.as_ref().map_or_else(|e| e.error_len().is_none(), |_| true);
            match result {
                Ok(()) => {
                    assert!(viable, "accepted an impossible prefix of {fed} bytes");
                    assert_eq!(v.is_complete(), prefix.is_ok(), "complete after {fed} bytes");
                }
                Err(_) => assert!(!viable, "rejected a viable prefix of {fed} bytes"),
            }
        }
        if result.is_err() {
            return false;
        }
    }
    let ok = v.finish().is_ok();
    assert_eq!(v, Validator::new(), "finish resets");
    ok
}
