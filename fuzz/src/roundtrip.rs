//! `roundtrip`: structured messages encoded by one role and decoded by the
//! other, through `Connection::send` and through hand-cut frames.

use std::sync::Arc;
use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use crest_proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crest_proto::{
    apply_mask, Accept, ClientRequest, CloseCode, CloseFrame, Config, Connection, EncodedMessage, Error, Event,
    Message, Payload, ProtocolError, Role, SendError, Text, MAX_CLOSE_REASON,
};

use crate::{chunk_sizes, drain, XFuzzConfig};

/// The structured input.
#[derive(Debug, Arbitrary)]
pub struct Input {
    /// The client sends (masked) or the server does.
    client_sends: bool,
    /// Negotiate `x-fuzz` for the `send` path.
    extension: bool,
    /// `max_send_frame_size` is this mod 4096, plus 1.
    frame_size: u16,
    /// Delivery: pieces of 1 to 2^(`chunk_log` mod 12) bytes from this seed.
    chunk_seed: u8,
    chunk_log: u8,
    /// Base of the client's masking keys for hand-cut frames.
    mask_key: [u8; 4],
    items: Vec<Item>,
    /// A Close to end with: any code, any reason.
    close: Option<(u16, String)>,
}

#[derive(Debug, Arbitrary)]
enum Item {
    /// A data message, its fragment sizes (the rest is the last fragment)
    /// and control frames to slip in before fragment `position % (n + 1)`.
    Data {
        text: bool,
        payload: Vec<u8>,
        /// The payload is repeated `1 + repeat % 64` times (large messages
        /// from short inputs).
        repeat: u8,
        fragments: Vec<u8>,
        controls: Vec<(u8, Control)>,
        /// Send as an `EncodedMessage` (a server's broadcast path).
        encoded: bool,
    },
    Control(Control),
}

#[derive(Debug, Clone, Arbitrary)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

impl Control {
    fn parts(&self) -> (OpCode, Payload) {
        let (op, p) = match self {
            Self::Ping(p) => (OpCode::Ping, p),
            Self::Pong(p) => (OpCode::Pong, p),
        };
        (op, Payload::copy_from_slice(&p[..p.len().min(MAX_CONTROL_PAYLOAD)]))
    }

    fn message(&self) -> Message {
        match self.parts() {
            (OpCode::Ping, p) => Message::Ping(p),
            (_, p) => Message::Pong(p),
        }
    }

    fn event(&self) -> Event {
        match self.parts() {
            (OpCode::Ping, p) => Event::Ping(p),
            (_, p) => Event::Pong(p),
        }
    }
}

/// A data item's payload, repeated: text items keep the longest UTF-8 prefix.
fn data_message(text: bool, payload: &[u8], repeat: u8) -> (Message, Event) {
    let payload = &payload.repeat(1 + usize::from(repeat % 64));
    if text {
        let valid = match std::str::from_utf8(payload) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&payload[..e.valid_up_to()]).unwrap(),
        };
        let t = Text::from(valid);
        (Message::Text(t.clone()), Event::Text(t))
    } else {
        let b = Payload::copy_from_slice(payload);
        (Message::Binary(b.clone()), Event::Binary(b))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The `roundtrip` target body.
pub fn roundtrip(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    via_send(&input);
    via_frames(&input);
}

fn pieces(input: &Input, len: usize) -> Vec<usize> {
    chunk_sizes(input.chunk_seed, 1 << (input.chunk_log % 12), len)
}

fn feed(conn: &mut Connection, input: &Input, now: Instant, wire: &[u8]) {
    let mut rest = wire;
    for n in pieces(input, wire.len()) {
        let (piece, tail) = rest.split_at(n);
        conn.receive(now, piece);
        rest = tail;
    }
}

/// A client and a server through a real opening handshake.
fn pair(config: Config, now: Instant) -> (Connection, Connection) {
    let mut client =
        Connection::client(ClientRequest::new("localhost", "/"), config.clone(), now).expect("a valid request");
    let mut server = Connection::server(config, now);
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    server.receive(now, &wire);
    assert!(matches!(drain(&mut server).as_slice(), [Event::Request(_)]));
    server.accept(Accept::new()).expect("accept");
    assert_eq!(drain(&mut server), [Event::Open]);
    wire.clear();
    server.poll_transmit(&mut wire);
    client.receive(now, &wire);
    assert_eq!(drain(&mut client), [Event::Open]);
    (client, server)
}

/// `send` (fragmenting at `max_send_frame_size`, through `x-fuzz` when
/// negotiated), `send_encoded`, `close` on one side; the other side reports
/// the same messages in order, and the Close; its echo closes the sender.
fn via_send(input: &Input) {
    let now = Instant::now();
    let mut config = Config {
        max_send_frame_size: usize::from(input.frame_size % 4096) + 1,
        auto_pong: false,
        rng_seed: Some(3),
        ..Config::default()
    };
    if input.extension {
        config.extensions = vec![Arc::new(XFuzzConfig)];
    }
    let (mut client, mut server) = pair(config.clone(), now);
    let (sender, receiver) = if input.client_sends { (&mut client, &mut server) } else { (&mut server, &mut client) };
    let mut expected = Vec::new();
    for item in &input.items {
        match item {
            Item::Data { text, payload, repeat, controls, encoded, .. } => {
                let (message, event) = data_message(*text, payload, *repeat);
                let broadcast = EncodedMessage::new(message.clone(), config.max_send_frame_size);
                match (encoded, sender.role()) {
                    (true, Role::Server) => sender.send_encoded(&broadcast).expect("send_encoded"),
                    (true, Role::Client) => {
                        assert_eq!(sender.send_encoded(&broadcast), Err(SendError::EncodedOnClient));
                        sender.send(message).expect("send");
                    }
                    (false, _) => sender.send(message).expect("send"),
                }
                expected.push(event);
                for (_, c) in controls {
                    sender.send(c.message()).expect("send control");
                    expected.push(c.event());
                }
            }
            Item::Control(c) => {
                sender.send(c.message()).expect("send control");
                expected.push(c.event());
            }
        }
    }
    let mut closed = None;
    if let Some((code, reason)) = &input.close {
        let code = CloseCode(*code);
        match sender.close(now, code, reason) {
            Ok(()) => {
                expected.push(Event::Closed(CloseFrame::new(code, reason.as_str())));
                closed = Some(code);
            }
            Err(e) => assert!(
                !code.is_valid_on_wire() || reason.len() > MAX_CLOSE_REASON,
                "close({code}, {} bytes) refused: {e:?}",
                reason.len()
            ),
        }
    }
    // Take the output chunk by chunk (the vectored-write path) or at once.
    let mut wire = Vec::new();
    if input.chunk_seed.is_multiple_of(2) {
        while let Some(chunk) = sender.poll_transmit_bytes() {
            wire.extend_from_slice(&chunk);
        }
    } else {
        sender.poll_transmit(&mut wire);
    }
    assert_eq!(sender.pending_transmit(), 0);
    feed(receiver, input, now, &wire);
    assert_eq!(drain(receiver), expected, "received what was sent");
    if let Some(code) = closed {
        let mut echo = Vec::new();
        receiver.poll_transmit(&mut echo);
        sender.receive(now, &echo);
        assert_eq!(drain(sender), [Event::Closed(CloseFrame::new(code, ""))], "the echo closes the sender");
    }
}

/// Hand-cut frames: every message fragmented as the input says, control
/// frames between the fragments, masked when the client sends; the other
/// side reports each control frame when it arrives and each message when
/// its last fragment does, answers Pings in order, and echoes the Close (or
/// fails with 1002 on a code that may not be sent).
fn via_frames(input: &Input) {
    let now = Instant::now();
    let sender = if input.client_sends { Role::Client } else { Role::Server };
    let receiver_role = match sender {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let config = Config { rng_seed: Some(4), ..Config::default() };
    let mut receiver = Connection::open(receiver_role, config.clone(), now);
    let mut f = Framer {
        wire: Vec::new(),
        masked: sender == Role::Client,
        key: u32::from_ne_bytes(input.mask_key),
        count: 0,
        expected: vec![Event::Open],
        answers: vec![Event::Open],
    };
    for item in &input.items {
        match item {
            Item::Data { text, payload, repeat, fragments, controls, .. } => {
                let (message, event) = data_message(*text, payload, *repeat);
                let (opcode, payload) = match &message {
                    Message::Text(t) => (OpCode::Text, t.as_bytes().to_vec()),
                    Message::Binary(b) => (OpCode::Binary, b.to_vec()),
                    _ => unreachable!("data_message makes data messages"),
                };
                let mut sizes = Vec::new();
                let mut left = payload.len();
                for &size in fragments {
                    let n = usize::from(size).min(left);
                    sizes.push(n);
                    left -= n;
                }
                sizes.push(left);
                let k = sizes.len();
                let slot = |p: &u8| usize::from(*p) % (k + 1);
                let mut at = 0;
                for (i, n) in sizes.iter().enumerate() {
                    for (_, c) in controls.iter().filter(|(p, _)| slot(p) == i) {
                        f.control(c);
                    }
                    let op = if i == 0 { opcode } else { OpCode::Continuation };
                    f.frame(i + 1 == k, op, &payload[at..at + n]);
                    at += n;
                }
                f.expected.push(event);
                for (_, c) in controls.iter().filter(|(p, _)| slot(p) == k) {
                    f.control(c);
                }
            }
            Item::Control(c) => f.control(c),
        }
    }
    if let Some((code, reason)) = &input.close {
        let reason = truncate(reason, MAX_CLOSE_REASON);
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(reason.as_bytes());
        f.frame(true, OpCode::Close, &body);
        let code = CloseCode(*code);
        if code.is_valid_on_wire() {
            f.expected.push(Event::Closed(CloseFrame::new(code, reason)));
            f.answers.push(Event::Closed(CloseFrame::new(code, "")));
        } else {
            let e = ProtocolError::InvalidCloseCode(code.0);
            f.expected.push(Event::Error(Error::Protocol(e)));
            let failed = CloseFrame::new(CloseCode::PROTOCOL_ERROR, "");
            f.expected.push(Event::Closed(failed.clone()));
            f.answers.push(Event::Closed(failed));
        }
    }
    feed(&mut receiver, input, now, &f.wire);
    assert_eq!(drain(&mut receiver), f.expected, "received what was framed");
    let mut out = Vec::new();
    receiver.poll_transmit(&mut out);
    let mut back = Connection::open(sender, config, now);
    back.receive(now, &out);
    assert_eq!(drain(&mut back), f.answers, "Pongs and the Close echo");
}

/// Builds the hand-cut wire and what each side should report.
struct Framer {
    wire: Vec<u8>,
    masked: bool,
    key: u32,
    count: u32,
    /// What the receiver reports.
    expected: Vec<Event>,
    /// What the receiver's answers decode to on the sender's side.
    answers: Vec<Event>,
}

impl Framer {
    fn frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mask = self.masked.then(|| (self.key ^ self.count.wrapping_mul(0x9E37_79B9)).to_ne_bytes());
        self.count += 1;
        let header = FrameHeader { fin, rsv: 0, opcode, mask, payload_len: payload.len() as u64 };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        self.wire.extend_from_slice(&head[..n]);
        let start = self.wire.len();
        self.wire.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.wire[start..], key, 0);
        }
    }

    fn control(&mut self, c: &Control) {
        let (op, p) = c.parts();
        self.frame(true, op, &p);
        if op == OpCode::Ping {
            self.answers.push(Event::Pong(p));
        }
        self.expected.push(c.event());
    }
}
