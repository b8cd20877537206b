//! The test harness: an in-memory client/server pair and raw frame builders.

use std::time::{Duration, Instant};

use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::{Accept, ClientRequest, Config, Connection, Event};

/// A client and a server wired through memory, with a fake clock.
pub(crate) struct Pair {
    pub(crate) client: Connection,
    pub(crate) server: Connection,
    pub(crate) now: Instant,
}

impl Pair {
    /// Both sides open, handshake done and its events drained.
    pub(crate) fn open() -> Self {
        Self::with_configs(seeded(), seeded())
    }

    pub(crate) fn with_configs(client: Config, server: Config) -> Self {
        let now = Instant::now();
        let mut pair = Self {
            client: Connection::client(ClientRequest::new("localhost", "/ws"), client, now).unwrap(),
            server: Connection::server(server, now),
            now,
        };
        pair.deliver_to_server();
        match pair.server.poll_event() {
            Some(Event::Request(_)) => pair.server.accept(Accept::new()).unwrap(),
            other => panic!("expected a request, got {other:?}"),
        }
        assert_eq!(drain(&mut pair.server), vec![Event::Open]);
        pair.deliver_to_client();
        assert_eq!(drain(&mut pair.client), vec![Event::Open]);
        pair
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves the client's output to the server; returns the bytes moved.
    pub(crate) fn deliver_to_server(&mut self) -> Vec<u8> {
        let mut wire = Vec::new();
        self.client.poll_transmit(&mut wire);
        self.server.receive(self.now, &wire);
        wire
    }

    /// Moves the server's output to the client; returns the bytes moved.
    pub(crate) fn deliver_to_client(&mut self) -> Vec<u8> {
        let mut wire = Vec::new();
        self.server.poll_transmit(&mut wire);
        self.client.receive(self.now, &wire);
        wire
    }
}

/// A config with a fixed seed, for reproducible masks and keys.
pub(crate) fn seeded() -> Config {
    Config { rng_seed: Some(7), ..Config::default() }
}

pub(crate) fn drain(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub(crate) fn output(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    out
}

/// A frame as the given role would send it (`mask` for client frames).
pub(crate) fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | rsv | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(m | n as u8),
        n @ 126..=0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut body = payload.to_vec();
    if let Some(key) = mask {
        out.extend_from_slice(&key);
        crate::apply_mask_reference(&mut body, key, 0);
    }
    out.extend_from_slice(&body);
    out
}

/// A masked client frame.
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, payload, Some([1, 2, 3, 4]))
}

/// The RFC 6455 §1.3 sample request, upgrade to `/chat`.
pub(crate) const REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A server that accepted the RFC sample request; events and output drained.
pub(crate) fn open_server(config: Config) -> Connection {
    let now = Instant::now();
    let mut server = Connection::server(config, now);
    server.receive(now, REQUEST.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain(&mut server), vec![Event::Open]);
    let _ = output(&mut server);
    server
}

/// Decodes every frame in a server's (unmasked) output.
pub(crate) fn parse_frames(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Ok(Some((h, n))) = FrameHeader::decode(bytes) {
        let end = n + h.payload_len as usize;
        let mut payload = bytes[n..end].to_vec();
        if let Some(key) = h.mask {
            crate::apply_mask(&mut payload, key, 0);
        }
        frames.push((h.opcode, payload));
        bytes = &bytes[end..];
    }
    assert!(bytes.is_empty() || bytes.len() < MAX_HEADER_LEN, "trailing bytes {bytes:?}");
    frames
}
