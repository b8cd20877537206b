//! `server_stream` and `client_stream`: a whole `Connection`, handshake
//! included, fed a peer's arbitrary bytes whole and in arbitrary chunks.

use std::time::Instant;

use crest_proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crest_proto::{
    apply_mask, Accept, BytesMut, CloseCode, Config, Connection, Error, Event, Request, Response, Role, State,
    MAX_CLOSE_REASON,
};

use crate::{client_request, drain, flags, head_len, response_status, stream_config, StreamInput};

/// What one run produced.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Everything transmitted after the client's own request head.
    pub output: Vec<u8>,
}

/// The `server_stream` target body.
pub fn server_stream(data: &[u8]) {
    fuzz(Role::Server, data);
}

/// The `client_stream` target body.
pub fn client_stream(data: &[u8]) {
    fuzz(Role::Client, data);
}

fn fuzz(role: Role, data: &[u8]) {
    let Some(input) = StreamInput::parse(data) else {
        return;
    };
    let config = stream_config(input.flags);
    let whole = run(role, &input, false);
    check_events(role, &config, &whole.events);
    check_output(role, &config, &whole);
    let chunked = run(role, &input, true);
    assert_eq!(whole.events, chunked.events, "events differ between whole and chunked input");
    assert_eq!(whole.output, chunked.output, "output differs between whole and chunked input");
}

/// Feeds the wire bytes to a fresh connection (whole, or in the input's
/// chunks), acting like an application after every call: server decisions
/// made at once, events drained, output taken, bounds checked.
pub fn run(role: Role, input: &StreamInput<'_>, chunked: bool) -> Transcript {
    let config = stream_config(input.flags);
    let now = Instant::now();
    let mut conn = match role {
        Role::Server => Connection::server(config.clone(), now),
        Role::Client => {
            let mut conn =
                Connection::client(client_request(), config.clone(), now).expect("the sample request is valid");
            let mut request = Vec::new();
            conn.poll_transmit(&mut request);
            assert!(request.starts_with(b"GET /chat HTTP/1.1\r\n"));
            conn
        }
    };
    let mut t = Transcript::default();
    if !chunked {
        conn.receive(now, input.wire);
        settle(&mut conn, &config, input.wire.len(), &mut t);
    } else if input.has(flags::BYTES) {
        // One read buffer split into pieces, as a read loop would hand them
        // over; the rest of a frame whose header is known is appended to the
        // connection's own input buffer instead, as crest-driver's Wire reads it.
        let mut buf = BytesMut::from(input.wire);
        for n in input.chunk_sizes() {
            if conn.frame_remaining() > 0 {
                conn.input_buffer(usize::MAX).extend_from_slice(&buf.split_to(n));
                conn.receive_appended(now, n);
            } else {
                conn.receive_bytes(now, buf.split_to(n));
            }
            settle(&mut conn, &config, n, &mut t);
        }
    } else {
        let mut rest = input.wire;
        for n in input.chunk_sizes() {
            let (piece, tail) = rest.split_at(n);
            conn.receive(now, piece);
            settle(&mut conn, &config, n, &mut t);
            rest = tail;
        }
    }
    if input.has(flags::EOF) {
        conn.receive_eof();
        settle(&mut conn, &config, 0, &mut t);
    }
    if conn.is_closed() {
        // A closed connection ignores input and emits nothing more.
        conn.receive(now, b"\x81\x85\x00\x00\x00\x00late!");
        conn.receive_eof();
        assert_eq!(drain(&mut conn), [], "events after Closed");
        assert_eq!(conn.pending_transmit(), 0, "output after Closed");
        assert_eq!(conn.buffered_len(), 0, "input held after Closed");
        if role == Role::Server || input.has(flags::EOF) {
            assert!(conn.is_finished(), "closed, drained, not finished");
        }
    }
    t
}

/// After one input: make the server's decision, drain events, check that
/// output and held input stay bounded, take the output.
fn settle(conn: &mut Connection, config: &Config, input_len: usize, t: &mut Transcript) {
    while let Some(event) = conn.poll_event() {
        if let Event::Request(request) = &event {
            decide(conn, request);
        }
        t.events.push(event);
    }
    // Output never outgrows input: at most 3 bytes per byte received (an
    // empty Ping from a server, 2 bytes, costs a client a 6-byte masked
    // Pong), plus one HTTP head, which may echo up to a head of ours.
    let pending = conn.pending_transmit();
    let allowed = 3 * input_len + config.max_handshake_size + 1024;
    assert!(pending <= allowed, "{pending} bytes to send after {input_len} bytes received");
    conn.poll_transmit(&mut t.output);
    assert_eq!(conn.pending_transmit(), 0);
    // Held input stays within the configured limits: an HTTP head while
    // connecting; one incomplete frame plus one fragmented message when open.
    let held = conn.buffered_len();
    let bound = match conn.state() {
        State::Connecting => config.max_handshake_size,
        State::Open | State::LocalClosing => MAX_HEADER_LEN + config.max_frame_size + config.max_message_size,
        State::Closed => 0,
    };
    assert!(held <= bound, "{held} bytes held in {:?}, bound {bound}", conn.state());
}

/// The server accepts every WebSocket request (with the first subprotocol
/// offered) and answers every plain request with a 404.
fn decide(conn: &mut Connection, request: &Request) {
    if request.is_websocket() {
        let mut accept = Accept::new();
        if let Some(p) = request.protocols().first() {
            accept = accept.protocol(p.clone());
        }
        conn.accept(accept).expect("accepting a pending WebSocket request with an offered protocol");
    } else {
        assert!(conn.accept(Accept::new()).is_err(), "accepted a plain request");
        conn.respond(Response::new(404).body("no such endpoint")).expect("responding to a pending request");
    }
}

/// The event sequence is well formed: a Request (server) and Open at most
/// once and in that order, data only while open and within the limits, text
/// always UTF-8, after an Error nothing but the Closed, Closed last, close
/// codes consistent with the error.
pub fn check_events(role: Role, config: &Config, events: &[Event]) {
    let mut request = None;
    let mut open = false;
    let mut error: Option<&Error> = None;
    let mut closed = false;
    for event in events {
        assert!(!closed, "{event:?} after Closed");
        if error.is_some() {
            assert!(matches!(event, Event::Closed(_)), "{event:?} after Error: only Closed may follow");
        }
        match event {
            Event::Request(r) => {
                assert_eq!(role, Role::Server, "Request on a client");
                assert!(request.is_none() && !open, "second Request");
                request = Some(r.is_websocket());
            }
            Event::Open => {
                assert!(!open, "second Open");
                if role == Role::Server {
                    assert_eq!(request, Some(true), "Open without a WebSocket request");
                }
                open = true;
            }
            Event::Text(text) => {
                assert!(open, "Text before Open");
                assert!(std::str::from_utf8(text.as_bytes()).is_ok(), "Text holding invalid UTF-8");
                assert!(text.len() <= config.max_message_size);
            }
            Event::Binary(b) => {
                assert!(open, "Binary before Open");
                assert!(b.len() <= config.max_message_size);
            }
            Event::Ping(p) | Event::Pong(p) => {
                assert!(open, "Ping/Pong before Open");
                assert!(p.len() <= MAX_CONTROL_PAYLOAD.min(config.max_frame_size));
            }
            Event::Error(e) => {
                match e {
                    Error::Handshake(h) => {
                        assert!(!open, "handshake error after Open: {h:?}");
                        assert!([400, 405, 426, 431].contains(&h.status()));
                    }
                    Error::Protocol(p) => assert!(open, "protocol error before Open: {p:?}"),
                    other => panic!("unexpected error {other:?}: no timer was run"),
                }
                error = Some(e);
            }
            Event::Closed(frame) => {
                closed = true;
                let code = frame.code;
                match error {
                    Some(Error::Protocol(p)) => assert_eq!(code, p.close_code()),
                    Some(_) => assert_eq!(code, CloseCode::ABNORMAL),
                    None => assert!(
                        code.is_valid_on_wire() || code == CloseCode::NO_STATUS_RECEIVED || code == CloseCode::ABNORMAL,
                        "Closed with code {code}"
                    ),
                }
                assert!(frame.reason.len() <= MAX_CLOSE_REASON);
            }
        }
    }
    assert!(error.is_none() || closed, "Error without Closed");
}

/// What we sent is well formed and answers what we received: the right
/// HTTP head (server), then frames masked as our role requires, a Pong per
/// Ping (with `auto_pong`), and the Close our events imply, last.
pub fn check_output(role: Role, config: &Config, t: &Transcript) {
    let mut frames = &t.output[..];
    if role == Role::Server {
        let Some(end) = head_len(frames) else {
            assert!(frames.is_empty(), "output without an HTTP head");
            assert!(
                !t.events.iter().any(|e| matches!(e, Event::Request(_) | Event::Error(_))),
                "a request or handshake error without a response"
            );
            return;
        };
        let status = response_status(frames).expect("an HTTP/1.1 status line");
        let expected = t.events.iter().find_map(|e| match e {
            Event::Open => Some(101),
            Event::Request(r) if !r.is_websocket() => Some(404),
            Event::Error(Error::Handshake(h)) => Some(h.status()),
            _ => None,
        });
        assert_eq!(Some(status), expected, "response status");
        if status != 101 {
            return;
        }
        frames = &frames[end..];
    }
    // Parse every frame we sent.
    let mut sent = Vec::new();
    while !frames.is_empty() {
        let (h, n) = FrameHeader::decode(frames)
            .expect("our own frame header is valid")
            .expect("our own output ends on a frame boundary");
        assert_eq!(h.mask.is_some(), role == Role::Client, "masking by role");
        assert!(h.fin && h.rsv == 0, "we send only whole control frames here");
        let end = n + h.payload_len as usize;
        let mut payload = frames.get(n..end).expect("a whole frame").to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        sent.push((h.opcode, payload));
        frames = &frames[end..];
    }
    let pings: Vec<&[u8]> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Ping(p) if config.auto_pong => Some(&p[..]),
            _ => None,
        })
        .collect();
    let pongs: Vec<&[u8]> = sent.iter().filter(|(op, _)| *op == OpCode::Pong).map(|(_, p)| &p[..]).collect();
    assert_eq!(pongs, pings, "one Pong per Ping, same payload, in order");
    let closes: Vec<&[u8]> = sent.iter().filter(|(op, _)| *op == OpCode::Close).map(|(_, p)| &p[..]).collect();
    assert!(closes.len() <= 1, "more than one Close sent");
    if let Some(close) = closes.first() {
        assert_eq!(sent.last().map(|(op, _)| *op), Some(OpCode::Close), "Close is last");
        // The code we sent: the error's close code, or the peer's echoed.
        let expected = t.events.iter().rev().find_map(|e| match e {
            Event::Error(Error::Protocol(p)) => Some(Some(p.close_code())),
            Event::Closed(f) if f.code == CloseCode::NO_STATUS_RECEIVED => Some(None),
            Event::Closed(f) => Some(Some(f.code)),
            _ => None,
        });
        let got = match close {
            [] => None,
            [hi, lo, ..] => Some(CloseCode(u16::from_be_bytes([*hi, *lo]))),
            [_] => panic!("a 1-byte Close body"),
        };
        assert_eq!(Some(got), expected, "Close code sent");
    } else {
        let must_close = t.events.iter().any(|e| match e {
            Event::Error(Error::Protocol(_)) => true,
            Event::Closed(f) => f.code != CloseCode::ABNORMAL,
            _ => false,
        });
        assert!(!must_close, "a protocol error or closing handshake without a Close sent");
    }
    // The head our server sent was followed by nothing but frames; a
    // connection still waiting for its head sent nothing at all.
    if role == Role::Client && !t.events.iter().any(|e| matches!(e, Event::Open)) {
        assert!(t.output.is_empty(), "a client sent frames before Open");
    }
    if t.events.is_empty() {
        assert!(t.output.is_empty());
    }
}
