//! permessage-deflate through whole connections: negotiation in the
//! handshake, RSV1 on the wire, fragmentation, control frames, limits,
//! broadcast.

use std::time::Instant;

use super::pair::*;
use crate::deflate::{DeflateConfig, TAIL};
use crate::frame::{FrameHeader, OpCode, RSV1};
use crate::{
    Accept, ClientRequest, CloseCode, CloseFrame, Config, Connection, EncodedMessage, Error, Event, HandshakeError,
    Message, ProtocolError,
};

fn deflate(d: DeflateConfig) -> Config {
    seeded().with_deflate(d)
}

fn no_threshold() -> DeflateConfig {
    DeflateConfig { threshold: 0, ..DeflateConfig::default() }
}

/// Text that compresses well but not to nothing.
fn json(n: usize) -> String {
    (0..n).map(|i| format!("{{\"id\":{i},\"name\":\"user{}\",\"ok\":{}}},", i * 7919 % 1000, i % 3 == 0)).collect()
}

/// Every frame header in `bytes` (masked or not), with its payload unmasked.
fn frames(mut bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while let Ok(Some((h, n))) = FrameHeader::decode(bytes) {
        let end = n + h.payload_len as usize;
        let mut payload = bytes[n..end].to_vec();
        if let Some(key) = h.mask {
            crate::apply_mask(&mut payload, key, 0);
        }
        out.push((h, payload));
        bytes = &bytes[end..];
    }
    out
}

#[test]
fn negotiated_both_ways_and_compressed_on_the_wire() {
    let mut p = Pair::with_configs(deflate(DeflateConfig::default()), deflate(DeflateConfig::default()));
    let text = json(200);
    p.client.send(Message::text(text.clone())).unwrap();
    let wire = p.deliver_to_server();
    let sent = frames(&wire);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.rsv, RSV1);
    assert!(wire.len() * 4 < text.len(), "{} -> {}", text.len(), wire.len());
    assert_eq!(drain(&mut p.server), vec![Event::Text(text.clone().into())]);

    p.server.send(Message::binary(text.clone().into_bytes())).unwrap();
    let wire = p.deliver_to_client();
    assert_eq!(frames(&wire)[0].0.rsv, RSV1);
    assert_eq!(drain(&mut p.client), vec![Event::Binary(text.into_bytes().into())]);
}

#[test]
fn the_101_names_the_negotiated_parameters() {
    let now = Instant::now();
    let client_config = deflate(DeflateConfig { client_no_context_takeover: true, ..DeflateConfig::default() });
    let mut client = Connection::client(ClientRequest::new("h", "/"), client_config, now).unwrap();
    let mut server = Connection::server(deflate(DeflateConfig::default()), now);
    let request = String::from_utf8(output(&mut client)).unwrap();
    assert!(
        request.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits\r\n"
        ),
        "{request}"
    );
    server.receive(now, request.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::new()).unwrap();
    let response = String::from_utf8(output(&mut server)).unwrap();
    assert!(response.contains("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"));
    client.receive(now, response.as_bytes());
    assert_eq!(drain(&mut client), vec![Event::Open]);
}

#[test]
fn the_first_acceptable_offer_wins() {
    let now = Instant::now();
    let mut server = Connection::server(deflate(DeflateConfig::default()), now);
    let request = REQUEST.replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; bogus, permessage-deflate; server_max_window_bits=10\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    server.receive(now, request.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::new()).unwrap();
    let response = String::from_utf8(output(&mut server)).unwrap();
    assert!(
        response.contains("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"),
        "{response}"
    );

    // Only malformed offers: no extension, and RSV1 is then a violation.
    let mut server = Connection::server(deflate(DeflateConfig::default()), now);
    let request = REQUEST.replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate; bogus\r\n\r\n");
    server.receive(now, request.as_bytes());
    let _ = drain(&mut server);
    server.accept(Accept::new()).unwrap();
    let response = String::from_utf8(output(&mut server)).unwrap();
    assert!(!response.contains("Sec-WebSocket-Extensions"), "{response}");
}

#[test]
fn client_fails_a_malformed_response() {
    let now = Instant::now();
    let mut client = Connection::client(ClientRequest::new("h", "/"), deflate(DeflateConfig::default()), now).unwrap();
    let mut server = Connection::server(seeded(), now);
    server.receive(now, &output(&mut client));
    let _ = drain(&mut server);
    server
        .accept(Accept::new().header("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=99"))
        .unwrap();
    client.receive(now, &output(&mut server));
    match &drain(&mut client)[..] {
        [Event::Error(Error::Handshake(HandshakeError::InvalidExtension(msg))), Event::Closed(_)] => {
            assert!(msg.contains("server_max_window_bits"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fragmented_compressed_message_has_rsv1_on_its_first_frame_only() {
    let small_frames = Config { max_send_frame_size: 64, ..deflate(DeflateConfig::default()) };
    let mut p = Pair::with_configs(small_frames, deflate(DeflateConfig::default()));
    let text = json(100);
    p.client.send(Message::text(text.clone())).unwrap();
    let wire = p.deliver_to_server();
    let sent = frames(&wire);
    assert!(sent.len() > 2, "{} frames", sent.len());
    assert_eq!((sent[0].0.opcode, sent[0].0.rsv, sent[0].0.fin), (OpCode::Text, RSV1, false));
    assert!(sent[1..].iter().all(|(h, _)| h.opcode == OpCode::Continuation && h.rsv == 0));
    assert!(sent.last().unwrap().0.fin);
    assert_eq!(drain(&mut p.server), vec![Event::Text(text.into())]);
}

#[test]
fn rfc_7692_fragmented_hello() {
    // §7.2.3.1: "Hello" compressed, sent in two fragments.
    let mut p = Pair::with_configs(deflate(DeflateConfig::default()), deflate(DeflateConfig::default()));
    let bytes = [frame(false, RSV1, 1, &[0xf2, 0x48, 0xcd], None), frame(true, 0, 0, &[0xc9, 0xc9, 0x07, 0x00], None)];
    // Byte by byte: reassembly does not depend on how input is split.
    for b in bytes.concat() {
        p.client.receive(p.now, &[b]);
    }
    assert_eq!(drain(&mut p.client), vec![Event::Text("Hello".into())]);
}

#[test]
fn rsv1_on_a_continuation_frame_is_a_protocol_error() {
    let mut p = Pair::with_configs(deflate(DeflateConfig::default()), deflate(DeflateConfig::default()));
    let bytes =
        [frame(false, RSV1, 1, &[0xf2, 0x48, 0xcd], None), frame(true, RSV1, 0, &[0xc9, 0xc9, 0x07, 0x00], None)];
    p.client.receive(p.now, &bytes.concat());
    assert_eq!(
        drain(&mut p.client),
        vec![
            Event::Error(Error::Protocol(ProtocolError::ReservedBits(RSV1))),
            Event::Closed(CloseFrame::new(CloseCode::PROTOCOL_ERROR, ""))
        ]
    );
}

#[test]
fn control_frames_are_never_compressed() {
    let mut p = Pair::with_configs(deflate(no_threshold()), deflate(no_threshold()));
    p.server.ping(vec![b'a'; 100]).unwrap();
    p.server.close(p.now, CloseCode::NORMAL, &"bye ".repeat(20)).unwrap();
    let wire = p.deliver_to_client();
    let sent = frames(&wire);
    assert_eq!(
        sent.iter().map(|(h, _)| (h.opcode, h.rsv)).collect::<Vec<_>>(),
        [(OpCode::Ping, 0), (OpCode::Close, 0)]
    );
    assert_eq!(sent[0].1, vec![b'a'; 100]);
}

#[test]
fn short_messages_go_uncompressed_below_the_threshold() {
    let mut p = Pair::with_configs(deflate(DeflateConfig::default()), deflate(DeflateConfig::default()));
    p.client.send(Message::text("hi")).unwrap();
    let wire = p.deliver_to_server();
    assert_eq!(frames(&wire)[0].0.rsv, 0);
    assert_eq!(drain(&mut p.server), vec![Event::Text("hi".into())]);
}

#[test]
fn a_bomb_closes_with_1009() {
    let limit = 1 << 20;
    let server_config = Config { max_message_size: limit, ..deflate(DeflateConfig::default()) };
    let mut p = Pair::with_configs(deflate(DeflateConfig::default()), server_config);
    // 16 MiB of zeros, compressed by the client's own extension (no limit on sending).
    p.client.send(Message::binary(vec![0u8; 16 << 20])).unwrap();
    let wire = p.deliver_to_server();
    assert!(wire.len() < 64 << 10, "{}", wire.len());
    let events = drain(&mut p.server);
    assert!(
        matches!(&events[..], [Event::Error(Error::Protocol(ProtocolError::MessageTooLarge { .. })), Event::Closed(f)]
            if f.code == CloseCode::MESSAGE_TOO_BIG),
        "{events:?}"
    );
}

#[test]
fn context_takeover_shrinks_repeated_messages_and_reset_does_not() {
    let text = json(50);
    let mut sizes = Vec::new();
    for server_reset in [false, true] {
        let d = DeflateConfig { server_no_context_takeover: server_reset, ..DeflateConfig::default() };
        let mut p = Pair::with_configs(deflate(DeflateConfig::default()), deflate(d));
        let mut lens = Vec::new();
        for _ in 0..3 {
            p.server.send(Message::text(text.clone())).unwrap();
            lens.push(p.deliver_to_client().len());
            assert_eq!(drain(&mut p.client), vec![Event::Text(text.clone().into())]);
        }
        sizes.push(lens);
    }
    assert!(sizes[0][1] * 4 < sizes[0][0], "takeover: {:?}", sizes[0]);
    assert!(sizes[1].iter().all(|&n| n == sizes[1][0]), "reset: {:?}", sizes[1]);
}

#[test]
fn broadcast_compresses_once_without_context_takeover() {
    let server_config =
        deflate(DeflateConfig { server_no_context_takeover: true, threshold: 0, ..DeflateConfig::default() });
    let mut a = Pair::with_configs(deflate(DeflateConfig::default()), server_config.clone());
    let mut b = Pair::with_configs(deflate(DeflateConfig::default()), server_config);
    let text = json(400);
    let message = EncodedMessage::new(Message::text(text.clone()), 1 << 20);
    a.server.send_encoded(&message).unwrap();
    b.server.send_encoded(&message).unwrap();
    let chunks = |conn: &mut Connection| std::iter::from_fn(|| conn.poll_transmit_bytes()).collect::<Vec<_>>();
    let (ca, cb) = (chunks(&mut a.server), chunks(&mut b.server));
    assert_eq!(ca.len(), 2, "header, then the compressed payload");
    assert_eq!(ca[1].as_ptr(), cb[1].as_ptr(), "one compressed payload shared by both");
    assert!(ca[1].len() * 4 < text.len());
    a.client.receive(a.now, &ca.concat());
    assert_eq!(drain(&mut a.client), vec![Event::Text(text.clone().into())]);

    // With context takeover each connection compresses for itself, and its
    // context carries over to the next message.
    let mut c = Pair::with_configs(deflate(DeflateConfig::default()), deflate(no_threshold()));
    c.server.send_encoded(&message).unwrap();
    c.server.send_encoded(&message).unwrap();
    let wire = c.deliver_to_client();
    let sent = frames(&wire);
    assert_eq!(sent.len(), 2);
    assert!(sent[1].1.len() * 4 < sent[0].1.len(), "the second refers to the first");
    assert_eq!(drain(&mut c.client), vec![Event::Text(text.clone().into()), Event::Text(text.into())]);
}

#[test]
fn tail_is_stripped_on_the_wire() {
    let mut p = Pair::with_configs(deflate(no_threshold()), deflate(no_threshold()));
    p.server.send(Message::text("Hello")).unwrap();
    let wire = p.deliver_to_client();
    assert_eq!(wire, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert!(!wire.ends_with(&TAIL));
    assert_eq!(drain(&mut p.client), vec![Event::Text("Hello".into())]);
}
