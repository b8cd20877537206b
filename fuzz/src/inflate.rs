//! The `inflate` target: permessage-deflate's decoder on hostile input, and
//! its encoder against an independent inflater.
//!
//! Input: `[flags][limit lo][limit hi]` then messages, each `[len lo][len
//! hi][bytes...]` (a short last one takes what is left).
//!
//! Flags: bit 0 the peer uses no context takeover (our inflater resets after
//! every message); bit 1 roundtrip mode; bits 2-4 our compressor's window
//! bits (8 + n, capped at 15), bits 5-7 its level (0-7).
//!
//! - Inflate mode: each message is handed to `Extension::decode` as a
//!   compressed (RSV1) message. It never panics; an accepted message is at
//!   most `limit` bytes; `MessageTooLarge` names a size above the limit;
//!   any other error is `ProtocolError::Extension` (1002); after an error
//!   the decoder still decodes a known-good message.
//! - Roundtrip mode: each message is plaintext. Our compressor (window and
//!   level from the flags, with or without context takeover) encodes it;
//!   the peer's decoder gives it back exactly, also with the limit set to
//!   the plaintext's length, and fails with `MessageTooLarge` one byte below
//!   it. An independent raw inflater (flate2, the negotiated window, at
//!   least 9 bits) agrees on every compressed message.

use crest_proto::deflate::{DeflateConfig, TAIL};
use crest_proto::extension::{Extension, ExtensionConfig, ExtensionOffer};
use crest_proto::frame::RSV1;
use crest_proto::{Bytes, ProtocolError};
use flate2::{Decompress, FlushDecompress};

/// "Hello" compressed (RFC 7692 §7.2.3.1).
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// Runs one input.
pub fn inflate(data: &[u8]) {
    let [flags, lo, hi, rest @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes([*lo, *hi]));
    let messages = split(rest);
    if flags & 2 == 0 {
        inflate_mode(*flags, limit, &messages);
    } else {
        roundtrip_mode(*flags, &messages);
    }
}

fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let [lo, hi, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        out.push(&tail[..n]);
        rest = &tail[n..];
    }
    out
}

/// Negotiates a server-side extension (the peer is the client) from the flags.
fn negotiate(flags: u8) -> (Box<dyn Extension>, Box<dyn Extension>, u8) {
    let bits = (8 + ((flags >> 2) & 7)).min(15);
    let level = u32::from(flags >> 5);
    let config = DeflateConfig { level, threshold: 0, ..DeflateConfig::default() };
    let mut params = vec![("server_max_window_bits".to_owned(), Some(bits.to_string()))];
    if flags & 1 != 0 {
        params.push(("client_no_context_takeover".to_owned(), None));
        params.push(("server_no_context_takeover".to_owned(), None));
    }
    let offer = ExtensionOffer { name: "permessage-deflate".into(), params };
    let (response, server) = config.accept(&offer).expect("a valid offer is accepted");
    let client = config.confirm(&response).expect("the server's own response is confirmed");
    (server, client, bits)
}

fn inflate_mode(flags: u8, limit: usize, messages: &[&[u8]]) {
    let (mut server, _, _) = negotiate(flags);
    for message in messages {
        match server.decode(RSV1, Bytes::copy_from_slice(message), limit) {
            Ok(out) => assert!(out.len() <= limit, "{} bytes accepted over a limit of {limit}", out.len()),
            Err(ProtocolError::MessageTooLarge { size, limit: l }) => {
                assert_eq!(l, limit);
                assert!(size > limit as u64, "too large at {size} <= {limit}");
            }
            Err(ProtocolError::Extension(_)) => {
                // The decoder was reset: a fresh message still decodes.
                let hello = server.decode(RSV1, Bytes::from_static(&HELLO), 16);
                assert_eq!(hello.as_deref(), Ok(&b"Hello"[..]), "no recovery after an error");
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
}

fn roundtrip_mode(flags: u8, messages: &[&[u8]]) {
    let (mut server, mut client, bits) = negotiate(flags);
    let mut independent = Decompress::new_with_window_bits(false, bits.max(9));
    for message in messages {
        let (rsv, compressed) = server.encode(Bytes::copy_from_slice(message));
        assert_eq!(rsv, RSV1, "threshold 0 compresses everything");
        // The peer's decoder, at exactly the plaintext's length.
        let back = client.decode(RSV1, compressed.clone(), message.len()).expect("our own output decodes");
        assert_eq!(&back[..], *message);
        // An independent inflater, fed with the tail re-appended.
        let mut out = Vec::with_capacity(message.len() + 64);
        let input = [&compressed[..], &TAIL].concat();
        let before = independent.total_out();
        independent.decompress_vec(&input, &mut out, FlushDecompress::Sync).expect("flate2 inflates our output");
        assert_eq!(independent.total_out() - before, message.len() as u64);
        assert_eq!(&out[..], *message, "flate2 disagrees");
        if flags & 1 != 0 {
            independent.reset(false);
        }
    }
    // One byte below the limit fails as too large, for a fresh pair.
    if let Some(message) = messages.iter().find(|m| !m.is_empty()) {
        let (mut server, mut client, _) = negotiate(flags);
        let (_, compressed) = server.encode(Bytes::copy_from_slice(message));
        let result = client.decode(RSV1, compressed, message.len() - 1);
        assert!(matches!(result, Err(ProtocolError::MessageTooLarge { .. })), "{result:?}");
    }
}
