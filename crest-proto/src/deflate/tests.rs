//! Codec and negotiation tests, with the examples of RFC 7692 §7.2.3.

use super::*;

fn offer(header: &str) -> ExtensionOffer {
    let mut offers = ExtensionOffer::parse_header(header);
    assert_eq!(offers.len(), 1, "{header}");
    offers.remove(0)
}

/// A server-side extension negotiated from `header` with the default config.
fn server_ext(config: &DeflateConfig, header: &str) -> Box<dyn Extension> {
    config.accept(&offer(header)).expect("accepted").1
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn no_threshold() -> DeflateConfig {
    DeflateConfig { threshold: 0, ..DeflateConfig::default() }
}

// ----- RFC 7692 §7.2.3 -----

#[test]
fn rfc_7_2_3_1_hello_compressed() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate");
    let (rsv, bytes) = ext.encode(Bytes::from_static(b"Hello"));
    assert_eq!(rsv, RSV1);
    assert_eq!(hex(&bytes), "f2 48 cd c9 c9 07 00");
    let mut peer = server_ext(&no_threshold(), "permessage-deflate");
    assert_eq!(peer.decode(RSV1, bytes, 1024).unwrap(), "Hello");
}

#[test]
fn rfc_7_2_3_2_shared_context_second_hello() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate");
    let first = ext.encode(Bytes::from_static(b"Hello")).1;
    let second = ext.encode(Bytes::from_static(b"Hello")).1;
    assert_eq!(hex(&second), "f2 00 11 00 00");
    let mut peer = server_ext(&no_threshold(), "permessage-deflate");
    assert_eq!(peer.decode(RSV1, first, 1024).unwrap(), "Hello");
    assert_eq!(peer.decode(RSV1, second, 1024).unwrap(), "Hello");
}

#[test]
fn rfc_7_2_3_2_no_context_takeover_repeats_the_first_encoding() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate; server_no_context_takeover");
    let first = ext.encode(Bytes::from_static(b"Hello")).1;
    let second = ext.encode(Bytes::from_static(b"Hello")).1;
    assert_eq!(hex(&first), "f2 48 cd c9 c9 07 00");
    assert_eq!(first, second);
}

#[test]
fn rfc_7_2_3_3_no_compression_block() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate");
    let stored = Bytes::from_static(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]);
    assert_eq!(ext.decode(RSV1, stored, 1024).unwrap(), "Hello");
}

#[test]
fn rfc_7_2_3_4_bfinal_block_and_next_message() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate");
    let final_block = Bytes::from_static(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]);
    assert_eq!(ext.decode(RSV1, final_block.clone(), 1024).unwrap(), "Hello");
    // The stream ended: the next message starts a new one.
    assert_eq!(ext.decode(RSV1, final_block, 1024).unwrap(), "Hello");
}

#[test]
fn rfc_7_2_3_5_two_deflate_blocks_in_one_message() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate");
    let two = Bytes::from_static(&[0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(ext.decode(RSV1, two, 1024).unwrap(), "Hello");
}

#[test]
fn roundtrip_large_text_with_and_without_context_takeover() {
    let text: Vec<u8> = (0..20_000).flat_map(|i| format!("{{\"id\":{i},\"name\":\"item\"}},").into_bytes()).collect();
    for header in ["permessage-deflate", "permessage-deflate; server_no_context_takeover"] {
        let mut tx = server_ext(&DeflateConfig::default(), header);
        let mut rx = server_ext(&DeflateConfig::default(), header);
        for _ in 0..3 {
            let (rsv, bytes) = tx.encode(Bytes::from(text.clone()));
            assert!(bytes.len() * 5 < text.len(), "{header}: {} -> {}", text.len(), bytes.len());
            assert_eq!(rx.decode(rsv, bytes, text.len()).unwrap(), text);
        }
    }
}

#[test]
fn empty_messages_compress_to_an_empty_block_in_every_mode() {
    // Found by the `inflate` fuzz target: zlib's sync flush after a flush
    // with no input emits nothing, which is not a valid compressed message.
    for header in [
        "permessage-deflate",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=8",
    ] {
        let mut tx = server_ext(&no_threshold(), header);
        let mut rx = server_ext(&no_threshold(), header);
        for message in [&b""[..], b"", b"abcabcabc", b"", b"", b"abc"] {
            let (rsv, bytes) = tx.encode(Bytes::copy_from_slice(message));
            assert_eq!(rsv, RSV1);
            assert!(!bytes.is_empty(), "{header}: empty compressed payload");
            assert_eq!(rx.decode(rsv, bytes, message.len()).unwrap(), message, "{header}");
        }
    }
}

#[test]
fn below_threshold_is_sent_uncompressed() {
    let mut ext = server_ext(&DeflateConfig { threshold: 10, ..DeflateConfig::default() }, "permessage-deflate");
    assert_eq!(ext.encode(Bytes::from_static(b"short")), (0, Bytes::from_static(b"short")));
    assert_eq!(ext.encode(Bytes::from_static(b"long enough")).0, RSV1);
}

#[test]
fn levels_change_the_output() {
    let text: Vec<u8> = (0..4000u32).flat_map(|i| (i % 251).to_string().into_bytes()).collect();
    let sizes: Vec<usize> = [0, 1, 9]
        .iter()
        .map(|&level| {
            let config = DeflateConfig { level, ..DeflateConfig::default() };
            server_ext(&config, "permessage-deflate").encode(Bytes::from(text.clone())).1.len()
        })
        .collect();
    assert!(sizes[0] > text.len(), "level 0 stores: {sizes:?}");
    assert!(sizes[2] <= sizes[1] && sizes[1] < sizes[0], "{sizes:?}");
}

// ----- safety -----

/// Compressed zeros: `size` bytes inflate from about `size / 1000`.
fn bomb(size: usize) -> Bytes {
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(size / 500 + 1024);
    for _ in 0..size / zeros.len() {
        c.compress_vec(&zeros, &mut out, FlushCompress::None).unwrap();
    }
    c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - 4);
    Bytes::from(out)
}

#[test]
fn decompression_bomb_stops_at_the_limit_without_allocating_it() {
    let payload = bomb(64 << 20);
    assert!(payload.len() < 128 << 10, "{}", payload.len());
    let limit = 1 << 20;
    let mut d = Decompress::new_with_window_bits(false, 15);
    let mut out = Vec::new();
    let err = inflate(&mut d, &payload, &mut out, limit).unwrap_err();
    assert!(matches!(err, ProtocolError::MessageTooLarge { limit: l, .. } if l == limit), "{err:?}");
    assert_eq!(err.close_code().0, 1009);
    assert!(out.capacity() <= limit + 1, "allocated {} for a limit of {limit}", out.capacity());

    let mut ext = server_ext(&DeflateConfig::default(), "permessage-deflate");
    assert!(matches!(ext.decode(RSV1, payload.clone(), limit), Err(ProtocolError::MessageTooLarge { .. })));
    // Exactly at the limit is fine.
    let exact = bomb(1 << 20);
    assert_eq!(ext.decode(RSV1, exact, 1 << 20).unwrap().len(), 1 << 20);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut ext = server_ext(&DeflateConfig::default(), "permessage-deflate");
    let err = ext.decode(RSV1, Bytes::from_static(&[0xff; 16]), 1024).unwrap_err();
    assert!(matches!(err, ProtocolError::Extension(_)), "{err:?}");
    assert_eq!(err.close_code().0, 1002);
    // The inflater was reset: a valid message still decodes.
    let hello = Bytes::from_static(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(ext.decode(RSV1, hello, 1024).unwrap(), "Hello");
    // RSV2 is not ours.
    assert_eq!(ext.decode(0x20, Bytes::new(), 1024), Err(ProtocolError::ReservedBits(0x20)));
}

#[test]
fn window_bits_8_sends_stored_blocks_an_8_bit_inflater_accepts() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate; server_max_window_bits=8");
    let text: Vec<u8> = b"abcdefgh".iter().cycle().take(3000).copied().collect();
    for _ in 0..2 {
        let (rsv, bytes) = ext.encode(Bytes::from(text.clone()));
        assert_eq!(rsv, RSV1);
        let mut d = Decompress::new_with_window_bits(false, 9);
        let mut out = Vec::new();
        let mut input = bytes.to_vec();
        input.extend_from_slice(&TAIL);
        assert!(!inflate(&mut d, &input, &mut out, usize::MAX).unwrap());
        assert_eq!(out, text);
    }
}

#[test]
fn window_bits_9_output_inflates_with_a_9_bit_window() {
    let mut ext = server_ext(&no_threshold(), "permessage-deflate; server_max_window_bits=9");
    let text: Vec<u8> = (0..20_000u32).flat_map(|i| (i % 997).to_string().into_bytes()).collect();
    let (_, bytes) = ext.encode(Bytes::from(text.clone()));
    let mut d = Decompress::new_with_window_bits(false, 9);
    let mut out = Vec::new();
    inflate(&mut d, &[&bytes[..], &TAIL].concat(), &mut out, usize::MAX).unwrap();
    assert_eq!(out, text);
}

// ----- negotiation -----

/// Server: offer -> response (`None`: declined).
#[test]
fn server_negotiation_matrix() {
    let default = DeflateConfig::default();
    let strict = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 10,
        client_max_window_bits: 11,
        ..DeflateConfig::default()
    };
    let cases: &[(&DeflateConfig, &str, Option<&str>)] = &[
        (&default, "permessage-deflate", Some("permessage-deflate")),
        (&default, "permessage-deflate; client_max_window_bits", Some("permessage-deflate")),
        (
            &default,
            "permessage-deflate; server_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        (
            &default,
            "permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        (
            &default,
            "permessage-deflate; server_max_window_bits=9",
            Some("permessage-deflate; server_max_window_bits=9"),
        ),
        (
            &default,
            "permessage-deflate; server_max_window_bits=8",
            Some("permessage-deflate; server_max_window_bits=8"),
        ),
        // The client's own limit is echoed (allowed: at most the offered value).
        (
            &default,
            "permessage-deflate; client_max_window_bits=12",
            Some("permessage-deflate; client_max_window_bits=12"),
        ),
        (
            &strict,
            "permessage-deflate",
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10",
            ),
        ),
        (
            &strict,
            "permessage-deflate; client_max_window_bits; server_max_window_bits=12",
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=11",
            ),
        ),
        (
            &strict,
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=9",
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9; client_max_window_bits=9",
            ),
        ),
        // Malformed offers are declined.
        (&default, "permessage-deflate; x-unknown", None),
        (&default, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        (&default, "permessage-deflate; server_no_context_takeover=1", None),
        (&default, "permessage-deflate; server_max_window_bits", None),
        (&default, "permessage-deflate; server_max_window_bits=7", None),
        (&default, "permessage-deflate; server_max_window_bits=16", None),
        (&default, "permessage-deflate; server_max_window_bits=09", None),
        (&default, "permessage-deflate; server_max_window_bits=+9", None),
        (&default, "permessage-deflate; client_max_window_bits=abc", None),
        (&default, "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10", None),
    ];
    for (config, offered, expected) in cases {
        let got = config.accept(&offer(offered)).map(|(response, _)| response.to_string());
        assert_eq!(got.as_deref(), *expected, "offer {offered:?}");
    }
}

/// Client: what it offers for a config.
#[test]
fn client_offers() {
    assert_eq!(DeflateConfig::default().offer().to_string(), "permessage-deflate; client_max_window_bits");
    let config = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 10,
        client_max_window_bits: 12,
        ..DeflateConfig::default()
    };
    assert_eq!(
        config.offer().to_string(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; \
         client_max_window_bits=12"
    );
}

/// Client: server response -> accepted (with our compressor's window and
/// reset) or the error.
#[test]
fn client_confirm_matrix() {
    let default = DeflateConfig::default();
    let asking = DeflateConfig {
        server_no_context_takeover: true,
        server_max_window_bits: 10,
        client_max_window_bits: 12,
        ..DeflateConfig::default()
    };
    type Expected = Result<(u8, bool), &'static str>;
    let cases: &[(&DeflateConfig, &str, Expected)] = &[
        (&default, "permessage-deflate", Ok((15, false))),
        (&default, "permessage-deflate; client_no_context_takeover", Ok((15, true))),
        (&default, "permessage-deflate; server_no_context_takeover", Ok((15, false))),
        (&default, "permessage-deflate; client_max_window_bits=9", Ok((9, false))),
        (&default, "permessage-deflate; client_max_window_bits=8", Ok((8, false))),
        (&default, "permessage-deflate; server_max_window_bits=10", Ok((15, false))),
        (&default, "permessage-deflate; client_max_window_bits", Err("needs a value")),
        (&default, "permessage-deflate; foo", Err("unknown parameter")),
        (&default, "permessage-deflate; client_max_window_bits=16", Err("invalid value")),
        (&default, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", Err("duplicate")),
        (&asking, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", Ok((12, false))),
        (
            &asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10",
            Ok((10, false)),
        ),
        (&asking, "permessage-deflate; server_max_window_bits=10", Err("server_no_context_takeover was requested")),
        (&asking, "permessage-deflate; server_no_context_takeover", Err("server_max_window_bits was requested")),
        (&asking, "permessage-deflate; server_no_context_takeover; server_max_window_bits=11", Err("exceeds")),
        (
            &asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13",
            Err("exceeds the offered limit"),
        ),
    ];
    for (config, response, expected) in cases {
        let got = config.confirm(&offer(response));
        match (got, expected) {
            (Ok(ext), Ok((bits, reset))) => {
                let debug = format!("{ext:?}");
                assert!(debug.contains(&format!("tx_bits: {bits},")), "{response}: {debug}");
                assert!(debug.contains(&format!("tx_reset: {reset},")), "{response}: {debug}");
            }
            (Err(HandshakeError::InvalidExtension(msg)), Err(needle)) => {
                assert!(msg.contains(needle), "{response}: {msg}");
            }
            (got, expected) => panic!("{response}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn shared_encoding_only_without_context_takeover() {
    let config = DeflateConfig::default();
    assert_eq!(server_ext(&config, "permessage-deflate").shared_encoding(), None);
    let a = server_ext(&config, "permessage-deflate; server_no_context_takeover").shared_encoding();
    let b = server_ext(&config, "permessage-deflate; server_no_context_takeover").shared_encoding();
    let c = server_ext(&config, "permessage-deflate; server_no_context_takeover; server_max_window_bits=9")
        .shared_encoding();
    assert!(a.is_some());
    assert_eq!(a, b);
    assert_ne!(a, c, "a different window is a different encoding");
}
