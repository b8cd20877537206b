//! Scenario tests, named after what they prove.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::Payload;

use super::pair::*;
use crate::frame::OpCode;
use crate::{
    Accept, ClientRequest, CloseCode, CloseFrame, Config, Connection, EncodedMessage, Error, Event, HandshakeError,
    Message, ProtocolError, Response, SendError, State, TimeoutKind,
};

fn closed(code: u16) -> Event {
    Event::Closed(CloseFrame::new(CloseCode(code), ""))
}

/// One named test per peer violation: the bytes a client sends to an open
/// server, the error reported, and the close code sent back.
macro_rules! violations {
    ($($name:ident: $bytes:expr => $err:expr, $code:expr;)*) => {$(
        #[test]
        fn $name() {
            let mut server = open_server(seeded());
            server.receive(Instant::now(), &$bytes);
            assert_eq!(drain(&mut server), vec![Event::Error(Error::Protocol($err)), closed($code)]);
            let out = output(&mut server);
            assert_eq!(parse_frames(&out), vec![(OpCode::Close, ($code as u16).to_be_bytes().to_vec())]);
            assert!(server.is_finished());
            // Input after the failure is ignored.
            server.receive(Instant::now(), &client_frame(true, 1, b"late"));
            assert_eq!(drain(&mut server), vec![]);
        }
    )*};
}

violations! {
    unmasked_client_frame: frame(true, 0, 1, b"hi", None) => ProtocolError::UnmaskedFrame, 1002;
    reserved_opcode_3: client_frame(true, 3, b"") => ProtocolError::ReservedOpcode(3), 1002;
    reserved_control_opcode_b: client_frame(true, 0xB, b"") => ProtocolError::ReservedOpcode(0xB), 1002;
    rsv1_without_extension: frame(true, 0x40, 1, b"x", Some([1, 2, 3, 4])) => ProtocolError::ReservedBits(0x40), 1002;
    rsv3_on_ping: frame(true, 0x10, 9, b"", Some([1, 2, 3, 4])) => ProtocolError::ReservedBits(0x10), 1002;
    ping_of_126_bytes: client_frame(true, 9, &[0; 126]) => ProtocolError::ControlFrameTooLarge(126), 1002;
    fragmented_ping: client_frame(false, 9, b"") => ProtocolError::FragmentedControlFrame, 1002;
    continuation_without_start: client_frame(true, 0, b"x") => ProtocolError::UnexpectedContinuation, 1002;
    new_message_inside_fragmented: [client_frame(false, 1, b"a"), client_frame(true, 2, b"b")].concat()
        => ProtocolError::ExpectedContinuation, 1002;
    invalid_utf8_text: client_frame(true, 1, b"\xce\xba\xff") => ProtocolError::InvalidUtf8, 1007;
    text_ending_mid_code_point: client_frame(true, 1, b"\xe2\x82") => ProtocolError::InvalidUtf8, 1007;
    close_body_of_one_byte: client_frame(true, 8, &[3]) => ProtocolError::InvalidCloseBody, 1002;
    close_code_999: client_frame(true, 8, &999u16.to_be_bytes()) => ProtocolError::InvalidCloseCode(999), 1002;
    close_code_1005: client_frame(true, 8, &1005u16.to_be_bytes()) => ProtocolError::InvalidCloseCode(1005), 1002;
    close_code_1016: client_frame(true, 8, &1016u16.to_be_bytes()) => ProtocolError::InvalidCloseCode(1016), 1002;
    close_code_5000: client_frame(true, 8, &5000u16.to_be_bytes()) => ProtocolError::InvalidCloseCode(5000), 1002;
    close_reason_not_utf8: client_frame(true, 8, &[0x03, 0xE8, 0xff]) => ProtocolError::InvalidCloseReason, 1007;
}

#[test]
fn valid_close_codes_are_accepted() {
    for code in [1000u16, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 3999, 4000, 4999] {
        let mut server = open_server(seeded());
        server.receive(Instant::now(), &client_frame(true, 8, &code.to_be_bytes()));
        assert_eq!(drain(&mut server), vec![closed(code)], "code {code}");
        // The echo carries the same code.
        assert_eq!(parse_frames(&output(&mut server)), vec![(OpCode::Close, code.to_be_bytes().to_vec())]);
    }
}

#[test]
fn length_of_2_pow_63_minus_1_closes_with_1009_without_allocating() {
    let mut server = open_server(seeded());
    let mut bytes = vec![0x82, 0xFF];
    bytes.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    server.receive(Instant::now(), &bytes);
    let events = drain(&mut server);
    assert!(
        matches!(&events[..], [Event::Error(Error::Protocol(ProtocolError::FrameTooLarge { .. })), Event::Closed(f)] if f.code.0 == 1009),
        "{events:?}"
    );
}

#[test]
fn message_growing_past_limit_by_small_fragments_closes_with_1009() {
    let config = Config { max_message_size: 1000, ..seeded() };
    let mut server = open_server(config);
    let mut bytes = client_frame(false, 2, &[0; 100]);
    for _ in 0..20 {
        bytes.extend(client_frame(false, 0, &[0; 100]));
    }
    server.receive(Instant::now(), &bytes);
    let events = drain(&mut server);
    assert_eq!(
        events,
        vec![
            Event::Error(Error::Protocol(ProtocolError::MessageTooLarge { size: 1000 + 100, limit: 1000 })),
            closed(1009)
        ]
    );
}

#[test]
fn invalid_utf8_fails_before_the_last_fragment_arrives() {
    let mut server = open_server(seeded());
    server.receive(Instant::now(), &client_frame(false, 1, "κόσμε".as_bytes()));
    assert_eq!(drain(&mut server), vec![]);
    // F4 90: beyond U+10FFFF; no continuation can repair it.
    server.receive(Instant::now(), &client_frame(false, 0, b"\xf4\x90"));
    assert_eq!(drain(&mut server), vec![Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)), closed(1007)]);
}

#[test]
fn invalid_utf8_fails_inside_a_frame_that_is_still_arriving() {
    let mut server = open_server(seeded());
    let bytes = client_frame(true, 1, b"hello\xed\xa0\x80 world and much more text");
    server.receive(Instant::now(), &bytes[..6 + 8]);
    assert_eq!(drain(&mut server), vec![Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)), closed(1007)]);
}

#[test]
fn code_point_split_across_fragments_is_valid() {
    let mut server = open_server(seeded());
    let euro = "€".as_bytes();
    let bytes =
        [client_frame(false, 1, &euro[..1]), client_frame(false, 0, &euro[1..2]), client_frame(true, 0, &euro[2..])]
            .concat();
    server.receive(Instant::now(), &bytes);
    assert_eq!(drain(&mut server), vec![Event::Text("€".into())]);
}

#[test]
fn control_frames_interleave_with_fragments_and_pong_is_automatic() {
    let mut server = open_server(seeded());
    let bytes =
        [client_frame(false, 1, b"Hel"), client_frame(true, 9, b"ping!"), client_frame(true, 0, b"lo")].concat();
    server.receive(Instant::now(), &bytes);
    assert_eq!(drain(&mut server), vec![Event::Ping(Payload::from_static(b"ping!")), Event::Text("Hello".into())]);
    assert_eq!(parse_frames(&output(&mut server)), vec![(OpCode::Pong, b"ping!".to_vec())]);
}

#[test]
fn auto_pong_can_be_switched_off() {
    let mut server = open_server(Config { auto_pong: false, ..seeded() });
    server.receive(Instant::now(), &client_frame(true, 9, b"x"));
    assert_eq!(drain(&mut server), vec![Event::Ping(Payload::from_static(b"x"))]);
    assert!(output(&mut server).is_empty());
}

#[test]
fn frames_after_the_request_head_are_processed_on_accept() {
    let now = Instant::now();
    let mut server = Connection::server(seeded(), now);
    let mut bytes = REQUEST.as_bytes().to_vec();
    bytes.extend(client_frame(true, 1, b"early"));
    server.receive(now, &bytes);
    assert!(matches!(server.poll_event(), Some(Event::Request(r)) if r.path() == "/chat"));
    assert_eq!(server.poll_event(), None, "nothing is processed before the decision");
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain(&mut server), vec![Event::Open, Event::Text("early".into())]);
}

#[test]
fn set_config_applies_the_chosen_endpoints_limits_before_accept() {
    let now = Instant::now();
    let mut server = Connection::server(seeded(), now);
    assert_eq!(server.set_config(seeded()), Err(crate::SendError::NoPendingRequest));
    server.receive(now, REQUEST.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    let small = Config { max_message_size: 4, ..seeded() };
    server.set_config(small).unwrap();
    server.accept(Accept::new()).unwrap();
    assert_eq!(server.config().max_message_size, 4);
    server.receive(now, &client_frame(true, 1, b"too long"));
    let events = drain(&mut server);
    assert_eq!(events.first(), Some(&Event::Open));
    assert_eq!(events.last(), Some(&closed(1009)));
}

#[test]
fn respond_rejects_with_status_and_closes() {
    let now = Instant::now();
    let mut server = Connection::server(seeded(), now);
    server.receive(now, REQUEST.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.respond(Response::new(401).header("WWW-Authenticate", "Bearer").body("no")).unwrap();
    let out = String::from_utf8(output(&mut server)).unwrap();
    assert!(out.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{out}");
    assert!(out.contains("WWW-Authenticate: Bearer\r\n") && out.ends_with("\r\n\r\nno"));
    assert_eq!(drain(&mut server), vec![Event::Closed(CloseFrame::abnormal())]);
    assert!(server.is_finished());
    assert_eq!(server.accept(Accept::new()), Err(SendError::NoPendingRequest));
}

#[test]
fn accept_checks_protocol_and_plain_requests() {
    let now = Instant::now();
    let mut server = Connection::server(seeded(), now);
    server.receive(now, REQUEST.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n").as_bytes());
    let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    assert_eq!(req.protocols(), ["chat"]);
    assert_eq!(server.accept(Accept::new().protocol("other")), Err(SendError::ProtocolNotOffered("other".into())));
    server.accept(Accept::new().protocol("chat").header("X-Extra", "1")).unwrap();
    let out = String::from_utf8(output(&mut server)).unwrap();
    assert!(out.contains("Sec-WebSocket-Protocol: chat\r\n") && out.contains("X-Extra: 1\r\n"));
    assert_eq!(server.protocol(), Some("chat"));

    let mut plain = Connection::server(seeded(), now);
    plain.receive(now, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let Some(Event::Request(req)) = plain.poll_event() else { panic!() };
    assert!(!req.is_websocket());
    assert_eq!(plain.accept(Accept::new()), Err(SendError::NotWebSocket));
    plain.respond(Response::new(200).body("<html></html>")).unwrap();
    assert!(String::from_utf8(output(&mut plain)).unwrap().starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn bad_version_answers_426_with_supported_version() {
    let now = Instant::now();
    let mut server = Connection::server(seeded(), now);
    server.receive(now, REQUEST.replace("Version: 13", "Version: 8").as_bytes());
    let err = HandshakeError::UnsupportedVersion("8".into());
    assert_eq!(drain(&mut server), vec![Event::Error(err.into()), Event::Closed(CloseFrame::abnormal())]);
    let out = String::from_utf8(output(&mut server)).unwrap();
    assert!(out.starts_with("HTTP/1.1 426 ") && out.contains("Sec-WebSocket-Version: 13\r\n"), "{out}");
}

#[test]
fn oversized_head_answers_431_without_waiting_for_its_end() {
    let now = Instant::now();
    let mut server = Connection::server(Config { max_handshake_size: 1024, ..seeded() }, now);
    server.receive(now, b"GET / HTTP/1.1\r\nX-Big: ");
    for _ in 0..20 {
        server.receive(now, &[b'a'; 100]);
    }
    let events = drain(&mut server);
    assert_eq!(events[0], Event::Error(HandshakeError::HeadTooLarge { limit: 1024 }.into()));
    assert!(String::from_utf8(output(&mut server)).unwrap().starts_with("HTTP/1.1 431 "));
}

#[test]
fn handshake_dribbled_byte_by_byte_times_out() {
    let now = Instant::now();
    let mut server = Connection::server(seeded(), now);
    for (i, b) in REQUEST.as_bytes()[..20].iter().enumerate() {
        server.receive(now + Duration::from_millis(i as u64), &[*b]);
    }
    let deadline = server.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(10));
    server.handle_timeout(deadline);
    assert_eq!(
        drain(&mut server),
        vec![Event::Error(Error::Timeout(TimeoutKind::Handshake)), Event::Closed(CloseFrame::abnormal())]
    );
}

#[test]
fn client_and_server_exchange_messages_both_ways() {
    let mut p = Pair::open();
    p.client.send(Message::text("hi")).unwrap();
    p.client.send(Message::binary(vec![1, 2, 3])).unwrap();
    p.deliver_to_server();
    assert_eq!(drain(&mut p.server), vec![Event::Text("hi".into()), Event::Binary(Payload::from_static(&[1, 2, 3]))]);
    p.server.send(Message::text("back")).unwrap();
    let big = Bytes::from(vec![7u8; 100_000]);
    p.server.send(Message::Binary(big.clone().into())).unwrap();
    p.deliver_to_client();
    assert_eq!(drain(&mut p.client), vec![Event::Text("back".into()), Event::Binary(big.into())]);
}

#[test]
fn client_initiated_close_handshake_transcript() {
    let mut p = Pair::open();
    p.client.send(Message::text("last words")).unwrap();
    p.client.close(p.now, CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(p.client.state(), State::LocalClosing);
    assert_eq!(p.client.send(Message::text("too late")), Err(SendError::NotOpen));
    p.deliver_to_server();
    // The server gets the queued message first, then the close; it echoes.
    assert_eq!(drain(&mut p.server), vec![Event::Text("last words".into()), closed_with(1000, "bye")]);
    assert!(p.server.is_finished() || p.server.pending_transmit() > 0);
    let echo = p.deliver_to_client();
    assert_eq!(parse_frames(&echo), vec![(OpCode::Close, 1000u16.to_be_bytes().to_vec())]);
    assert!(p.server.is_finished(), "the server closes TCP once its echo is written");
    assert_eq!(drain(&mut p.client), vec![closed_with(1000, "")]);
    assert!(!p.client.is_finished(), "the client waits for the server to close TCP");
    p.client.receive_eof();
    assert!(p.client.is_finished());
}

fn closed_with(code: u16, reason: &str) -> Event {
    Event::Closed(CloseFrame::new(CloseCode(code), reason))
}

#[test]
fn server_initiated_close_and_client_wait_timeout() {
    let mut p = Pair::open();
    p.server.close(p.now, CloseCode::GOING_AWAY, "restart").unwrap();
    p.deliver_to_client();
    assert_eq!(drain(&mut p.client), vec![closed_with(1001, "restart")]);
    p.deliver_to_server();
    assert_eq!(drain(&mut p.server), vec![closed_with(1001, "")]);
    assert!(p.server.is_finished());
    // The server never closes TCP: the client gives up after the close timeout.
    let deadline = p.client.poll_timeout().unwrap();
    assert_eq!(deadline, p.now + Duration::from_secs(5));
    assert!(!p.client.is_finished());
    p.client.handle_timeout(deadline);
    assert!(p.client.is_finished());
}

#[test]
fn close_timeout_when_peer_never_answers() {
    let mut p = Pair::open();
    p.server.close(p.now, CloseCode::NORMAL, "").unwrap();
    let deadline = p.server.poll_timeout().unwrap();
    p.server.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(drain(&mut p.server), vec![]);
    p.server.handle_timeout(deadline);
    assert_eq!(
        drain(&mut p.server),
        vec![Event::Error(Error::Timeout(TimeoutKind::Close)), Event::Closed(CloseFrame::abnormal())]
    );
}

#[test]
fn simultaneous_close_ends_cleanly_on_both_sides() {
    let mut p = Pair::open();
    p.client.close(p.now, CloseCode::NORMAL, "c").unwrap();
    p.server.close(p.now, CloseCode::NORMAL, "s").unwrap();
    p.deliver_to_server();
    p.deliver_to_client();
    assert_eq!(drain(&mut p.server), vec![closed_with(1000, "c")]);
    assert_eq!(drain(&mut p.client), vec![closed_with(1000, "s")]);
    assert!(p.server.is_finished());
    assert!(output(&mut p.server).is_empty(), "nothing is sent after our close");
}

#[test]
fn eof_without_close_is_abnormal_1006() {
    let mut p = Pair::open();
    p.server.receive_eof();
    assert_eq!(drain(&mut p.server), vec![Event::Closed(CloseFrame::abnormal())]);
    assert!(p.server.is_finished());
}

#[test]
fn heartbeat_pings_and_idle_timeout() {
    let config = Config {
        ping_interval: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(25)),
        ..seeded()
    };
    let mut p = Pair::with_configs(seeded(), config);
    let t0 = p.now;
    assert_eq!(p.server.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    p.advance(Duration::from_secs(10));
    p.server.handle_timeout(p.now);
    let wire = p.deliver_to_client();
    assert_eq!(parse_frames(&wire), vec![(OpCode::Ping, vec![])]);
    assert_eq!(drain(&mut p.client), vec![Event::Ping(Payload::new())]);
    // The client's automatic pong counts as activity.
    p.deliver_to_server();
    assert_eq!(drain(&mut p.server), vec![Event::Pong(Payload::new())]);
    assert_eq!(p.server.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    // Now the client goes silent: pings at 20 s and 30 s go unanswered, and
    // the idle timeout fires 25 s after the pong that arrived at 10 s.
    for (at, next) in [(20, 30), (30, 35)] {
        p.advance(Duration::from_secs(10));
        assert_eq!(p.now, t0 + Duration::from_secs(at));
        p.server.handle_timeout(p.now);
        assert_eq!(parse_frames(&output(&mut p.server)), vec![(OpCode::Ping, vec![])]);
        assert_eq!(p.server.poll_timeout(), Some(t0 + Duration::from_secs(next)));
    }
    p.advance(Duration::from_secs(5));
    p.server.handle_timeout(p.now);
    assert_eq!(drain(&mut p.server), vec![Event::Error(Error::Timeout(TimeoutKind::Idle)), closed(1001)]);
    assert_eq!(parse_frames(&output(&mut p.server)), vec![(OpCode::Close, 1001u16.to_be_bytes().to_vec())]);
}

#[test]
fn caller_misuse_is_an_err_of_the_call() {
    let mut p = Pair::open();
    assert_eq!(p.client.ping(vec![0u8; 126]), Err(SendError::ControlFrameTooLarge(126)));
    assert_eq!(p.client.close(p.now, CloseCode(1005), ""), Err(SendError::InvalidCloseCode(1005)));
    assert_eq!(p.client.close(p.now, CloseCode::NORMAL, &"x".repeat(124)), Err(SendError::CloseReasonTooLong(124)));
    let enc = EncodedMessage::new(Message::text("x"), 1 << 20);
    assert_eq!(p.client.send_encoded(&enc), Err(SendError::EncodedOnClient));
    assert!(output(&mut p.client).is_empty(), "nothing was queued by the failed calls");
    p.client.close(p.now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(p.client.close(p.now, CloseCode::NORMAL, ""), Err(SendError::NotOpen));
}

#[test]
fn large_messages_are_fragmented_on_send() {
    let mut p = Pair::with_configs(Config { max_send_frame_size: 1000, ..seeded() }, seeded());
    let text: String = "abcdefghij".repeat(250);
    p.client.send(Message::text(text.clone())).unwrap();
    let wire = p.deliver_to_server();
    let frames = parse_frames(&wire);
    assert_eq!(frames.len(), 3);
    assert_eq!((frames[0].0, frames[1].0, frames[2].0), (OpCode::Text, OpCode::Continuation, OpCode::Continuation));
    assert_eq!(drain(&mut p.server), vec![Event::Text(text.into())]);
}

#[test]
fn broadcast_encoding_is_shared_not_copied() {
    let mut p = Pair::open();
    let payload = Bytes::from(vec![9u8; 64 * 1024]);
    let enc = EncodedMessage::new(Message::Binary(payload.clone().into()), 1 << 20);
    p.server.send_encoded(&enc).unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = p.server.poll_transmit_bytes() {
        chunks.push(c);
    }
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1].as_ptr(), payload.as_ptr(), "the payload is the caller's own Bytes");
    p.client.receive(p.now, &chunks.concat());
    assert_eq!(drain(&mut p.client), vec![Event::Binary(payload.into())]);
}

#[test]
fn received_message_is_not_copied_with_receive_bytes() {
    let mut server = open_server(seeded());
    let wire = client_frame(true, 2, &[5u8; 4096]);
    let buf = bytes::BytesMut::from(&wire[..]);
    let start = buf.as_ptr() as usize;
    server.receive_bytes(Instant::now(), buf);
    let Some(Event::Binary(b)) = server.poll_event() else { panic!() };
    assert_eq!(b.as_ptr() as usize, start + 8, "payload is a slice of the buffer handed in");
    assert!(b.iter().all(|&x| x == 5));
}

#[test]
fn large_frame_read_into_the_input_buffer_is_not_copied() {
    let mut server = open_server(seeded());
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let wire = client_frame(true, 2, &payload);
    let header_len = wire.len() - payload.len();
    let now = Instant::now();
    // The start of the frame arrives in the caller's block.
    server.receive_bytes(now, bytes::BytesMut::from(&wire[..5000]));
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.frame_remaining(), wire.len() - 5000);
    // Room for exactly the rest of the frame, however much is asked for.
    let buf = server.input_buffer(usize::MAX);
    assert_eq!(buf.len(), 5000);
    assert_eq!(buf.capacity(), wire.len(), "the held start copied once into a buffer of the frame's size");
    let start = buf.as_ptr() as usize;
    for piece in wire[5000..].chunks(65_536) {
        let buf = server.input_buffer(usize::MAX);
        buf.extend_from_slice(piece);
        assert_eq!(buf.as_ptr() as usize, start, "bytes land next to the frame's start");
        server.receive_appended(now, piece.len());
        let remaining = server.frame_remaining();
        if remaining > 0 {
            assert_eq!(server.poll_event(), None);
        }
    }
    assert_eq!(server.frame_remaining(), 0);
    let Some(Event::Binary(b)) = server.poll_event() else { panic!("expected the message") };
    assert_eq!(b.as_ptr() as usize, start + header_len, "payload is a slice of the input buffer");
    assert_eq!(&b[..], &payload[..]);
    assert_eq!(server.buffered_len(), 0);
}

#[test]
fn input_buffer_reserves_no_more_than_asked_or_the_frame() {
    let mut server = open_server(seeded());
    let wire = client_frame(true, 2, &[7u8; 10_000]);
    let now = Instant::now();
    // No frame decoded yet: nothing is reserved.
    assert_eq!(server.frame_remaining(), 0);
    assert_eq!(server.input_buffer(1 << 20).capacity(), 0);
    server.receive_bytes(now, bytes::BytesMut::from(&wire[..100]));
    assert_eq!(server.poll_event(), None);
    let buf = server.input_buffer(1000);
    assert_eq!((buf.len(), buf.capacity()), (100, 1100));
    buf.extend_from_slice(&wire[100..]);
    server.receive_appended(now, wire.len() - 100);
    assert_eq!(drain(&mut server), vec![Event::Binary(vec![7u8; 10_000].into())]);
}

#[test]
fn length_of_2_pow_63_minus_1_reserves_nothing_in_the_input_buffer() {
    let mut server = open_server(seeded());
    let mut bytes = vec![0x82, 0xFF];
    bytes.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    let now = Instant::now();
    server.input_buffer(usize::MAX).extend_from_slice(&bytes);
    server.receive_appended(now, bytes.len());
    let events = drain(&mut server);
    assert!(
        matches!(&events[..], [Event::Error(Error::Protocol(ProtocolError::FrameTooLarge { .. })), Event::Closed(f)] if f.code.0 == 1009),
        "{events:?}"
    );
    assert_eq!(server.frame_remaining(), 0);
    assert!(server.input_buffer(usize::MAX).capacity() < 64, "nothing reserved for the announced length");
}

#[test]
fn bytes_appended_after_the_end_are_dropped() {
    let mut server = open_server(seeded());
    let now = Instant::now();
    server.receive(now, &client_frame(true, 8, &[3, 232]));
    let events = drain(&mut server);
    assert_eq!(events.last(), Some(&closed(1000)));
    let before = server.buffered_len();
    let late = client_frame(true, 2, b"late");
    server.input_buffer(usize::MAX).extend_from_slice(&late);
    server.receive_appended(now, late.len());
    assert_eq!(server.buffered_len(), before);
    assert_eq!(drain(&mut server), vec![]);
}

#[test]
fn client_rejects_bad_accept_key_and_reports_eof() {
    let now = Instant::now();
    let mut client = Connection::client(ClientRequest::new("h", "/").key([0; 16]), seeded(), now).unwrap();
    let _ = output(&mut client);
    client.receive(
        now,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
    );
    assert_eq!(
        drain(&mut client),
        vec![Event::Error(HandshakeError::InvalidAccept.into()), Event::Closed(CloseFrame::abnormal())]
    );
    let mut client = Connection::client(ClientRequest::new("h", "/"), seeded(), now).unwrap();
    client.receive_eof();
    assert_eq!(
        drain(&mut client),
        vec![Event::Error(HandshakeError::Eof.into()), Event::Closed(CloseFrame::abnormal())]
    );
}

#[test]
fn client_closes_on_masked_server_frame() {
    let mut p = Pair::open();
    p.client.receive(p.now, &frame(true, 0, 1, b"x", Some([1, 1, 1, 1])));
    assert_eq!(drain(&mut p.client), vec![Event::Error(Error::Protocol(ProtocolError::MaskedFrame)), closed(1002)]);
}

#[test]
fn idle_connection_is_small() {
    let p = Pair::open();
    // The whole per-connection state, buffers excluded (they are released
    // when empty); the adapters' budget is 2 KiB per idle connection.
    assert!(std::mem::size_of::<Connection>() <= 640, "{}", std::mem::size_of::<Connection>());
    drop(p);
}

mod extension_point {
    use super::*;
    use crate::extension::{Extension, ExtensionConfig, ExtensionOffer};
    use crate::frame::RSV1;
    use std::sync::Arc;

    /// A toy extension: RSV1 means "payload is reversed".
    #[derive(Debug)]
    struct Reverse;
    #[derive(Debug)]
    struct ReverseState;

    impl ExtensionConfig for Reverse {
        fn name(&self) -> &str {
            "x-reverse"
        }
        fn offer(&self) -> ExtensionOffer {
            ExtensionOffer { name: "x-reverse".into(), params: vec![] }
        }
        fn accept(&self, offer: &ExtensionOffer) -> Option<(ExtensionOffer, Box<dyn Extension>)> {
            Some((offer.clone(), Box::new(ReverseState)))
        }
        fn confirm(&self, _: &ExtensionOffer) -> Result<Box<dyn Extension>, HandshakeError> {
            Ok(Box::new(ReverseState))
        }
    }

    impl Extension for ReverseState {
        fn rsv_bits(&self) -> u8 {
            RSV1
        }
        fn decode(&mut self, _: u8, payload: Bytes, max: usize) -> Result<Bytes, ProtocolError> {
            if payload.len() > max {
                return Err(ProtocolError::MessageTooLarge { size: payload.len() as u64, limit: max });
            }
            Ok(payload.iter().rev().copied().collect::<Vec<_>>().into())
        }
        fn encode(&mut self, payload: Bytes) -> (u8, Bytes) {
            (RSV1, payload.iter().rev().copied().collect::<Vec<_>>().into())
        }
    }

    #[test]
    fn negotiated_extension_sets_and_accepts_rsv1() {
        let config = Config { extensions: vec![Arc::new(Reverse)], ..seeded() };
        let mut p = Pair::with_configs(config.clone(), config);
        p.client.send(Message::text("stressed")).unwrap();
        let wire = p.deliver_to_server();
        assert_eq!(wire[0] & RSV1, RSV1, "first frame carries RSV1");
        assert_eq!(drain(&mut p.server), vec![Event::Text("stressed".into())]);
        p.server.send(Message::binary(&b"abc"[..])).unwrap();
        p.deliver_to_client();
        assert_eq!(drain(&mut p.client), vec![Event::Binary(Payload::from_static(b"abc"))]);
        // Uncompressed (RSV1 clear) messages still pass.
        p.client.receive(p.now, &frame(true, 0, 1, b"plain", None));
        assert_eq!(drain(&mut p.client), vec![Event::Text("plain".into())]);
    }

    #[test]
    fn client_rejects_unoffered_extension() {
        let now = Instant::now();
        let mut server = Connection::server(Config { extensions: vec![Arc::new(Reverse)], ..seeded() }, now);
        let mut client = Connection::client(ClientRequest::new("h", "/"), seeded(), now).unwrap();
        // The client offered nothing; make the server answer anyway.
        let mut req = output(&mut client);
        let head = String::from_utf8(req.clone())
            .unwrap()
            .replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: x-reverse\r\n\r\n");
        req = head.into_bytes();
        server.receive(now, &req);
        let _ = drain(&mut server);
        server.accept(Accept::new()).unwrap();
        client.receive(now, &output(&mut server));
        assert_eq!(drain(&mut client)[0], Event::Error(HandshakeError::UnofferedExtension("x-reverse".into()).into()));
    }
}

#[test]
fn answers_to_messages_before_a_violation_go_out_before_the_close() {
    // Autobahn 3.2: a valid message and an invalid frame in the same read.
    let mut server = open_server(seeded());
    let bytes = [client_frame(true, 1, b"echo me"), frame(true, 0x20, 1, b"bad", Some([9, 9, 9, 9]))].concat();
    server.receive(Instant::now(), &bytes);
    assert_eq!(server.poll_event(), Some(Event::Text("echo me".into())));
    assert!(server.is_open(), "the end applies when the caller reaches it");
    server.send(Message::text("echo me")).unwrap();
    assert_eq!(
        drain(&mut server),
        vec![Event::Error(Error::Protocol(ProtocolError::ReservedBits(0x20))), closed(1002)]
    );
    assert_eq!(
        parse_frames(&output(&mut server)),
        vec![(OpCode::Text, b"echo me".to_vec()), (OpCode::Close, 1002u16.to_be_bytes().to_vec())]
    );
    assert_eq!(server.send(Message::text("late")), Err(SendError::NotOpen));
}

#[test]
fn answers_before_a_peer_close_go_out_before_the_echo() {
    let mut server = open_server(seeded());
    let bytes = [client_frame(true, 2, b"x"), client_frame(true, 8, &1000u16.to_be_bytes())].concat();
    server.receive(Instant::now(), &bytes);
    assert_eq!(server.poll_event(), Some(Event::Binary(Payload::from_static(b"x"))));
    server.send(Message::binary(&b"x"[..])).unwrap();
    assert_eq!(drain(&mut server), vec![closed(1000)]);
    assert_eq!(
        parse_frames(&output(&mut server)),
        vec![(OpCode::Binary, b"x".to_vec()), (OpCode::Close, 1000u16.to_be_bytes().to_vec())]
    );
    assert!(server.is_finished());
}

#[test]
fn events_and_payloads_stay_small() {
    // Moved on every poll_event: keep them a few words.
    assert_eq!(std::mem::size_of::<Payload>(), std::mem::size_of::<Bytes>());
    assert!(std::mem::size_of::<Event>() <= 48, "{}", std::mem::size_of::<Event>());
}

/// Short messages take fast paths on both sides (inline payloads, fixed-size
/// copies, an ASCII check before the full UTF-8 check): every length around
/// the inline capacity, both directions, text with multi-byte characters at
/// either end, binary with every high bit set, and invalid UTF-8 at the end.
#[test]
fn short_messages_of_every_length_round_trip() {
    let mut pair = Pair::open();
    let mut sent = Vec::new();
    for len in 0..=crate::payload::INLINE_CAPACITY + 3 {
        let ascii: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let mut texts = vec![ascii];
        if len >= 2 {
            texts.push(format!("é{}", "x".repeat(len - 2)));
            texts.push(format!("{}é", "x".repeat(len - 2)));
        }
        for t in texts {
            sent.push(Message::text(t));
        }
        sent.push(Message::binary((0..len).map(|i| 0x80 | i as u8).collect::<Vec<u8>>()));
    }
    let expected: Vec<Event> = sent
        .iter()
        .map(|m| match m.clone() {
            Message::Text(t) => Event::Text(t),
            Message::Binary(b) => Event::Binary(b),
            _ => unreachable!(),
        })
        .collect();
    for m in &sent {
        pair.client.send(m.clone()).unwrap();
        pair.server.send(m.clone()).unwrap();
    }
    pair.deliver_to_server();
    pair.deliver_to_client();
    assert_eq!(drain(&mut pair.server), expected);
    assert_eq!(drain(&mut pair.client), expected);

    for len in 1..=crate::payload::INLINE_CAPACITY {
        let mut server = open_server(Config::default());
        let mut bad = vec![b'a'; len];
        bad[len - 1] = 0xFF;
        let mut wire = client_frame(true, 1, b"ok");
        wire.extend(client_frame(true, 1, &bad));
        wire.extend(client_frame(true, 2, b"never seen"));
        server.receive(Instant::now(), &wire);
        assert_eq!(
            drain(&mut server),
            vec![
                Event::Text(crate::Text::from_static("ok")),
                Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)),
                closed(1007)
            ],
            "len {len}"
        );
    }
}

#[test]
fn medium_messages_take_the_fast_path_with_the_same_events() {
    // 16-bit lengths (126 B to 64 KiB): received whole they are decoded by
    // the fast path, byte by byte by the general one; both must agree, on
    // valid messages and on invalid UTF-8.
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for len in [126usize, 127, 300, 1024, 4096, 65_535] {
        let text: String = (0..len).map(|i| if i % 50 == 7 { 'é' } else { 'a' }).collect::<String>();
        let text = &text[..text.char_indices().map(|(i, _)| i).take_while(|&i| i <= len).last().unwrap_or(0)];
        wire.extend(client_frame(true, 1, text.as_bytes()));
        expected.push(Event::Text(crate::Text::from(text.to_string())));
        let binary: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        wire.extend(client_frame(true, 2, &binary));
        expected.push(Event::Binary(binary.into()));
    }
    // A non-minimal length (5 bytes in the 16-bit form) is decoded like any other.
    let mut odd = vec![0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4];
    odd.extend(b"hello".iter().zip([1u8, 2, 3, 4].iter().cycle()).map(|(b, k)| b ^ k));
    wire.extend(&odd);
    expected.push(Event::Binary(b"hello".to_vec().into()));

    let mut whole = open_server(Config::default());
    whole.receive(Instant::now(), &wire);
    let mut bytewise = open_server(Config::default());
    for b in &wire {
        bytewise.receive(Instant::now(), std::slice::from_ref(b));
    }
    assert_eq!(drain(&mut whole), expected);
    assert_eq!(drain(&mut bytewise), expected);

    for len in [126usize, 1000] {
        let mut bad = vec![b'a'; len];
        bad[len / 2] = 0xFF;
        let mut wire = client_frame(true, 1, &bad);
        wire.extend(client_frame(true, 2, b"never seen"));
        let mut whole = open_server(Config::default());
        whole.receive(Instant::now(), &wire);
        let want = vec![Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)), closed(1007)];
        assert_eq!(drain(&mut whole), want, "len {len}");
    }
}
