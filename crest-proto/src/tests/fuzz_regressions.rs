//! One test per crash the fuzz targets (`fuzz/`) found, named after what it
//! proves, with the target and crash file it came from. Each was added
//! before its fix.

/// `fuzz/` target `mask`, crash-ee97a9fe70c9021fa9daa4638be88aabb7082fb1:
/// `apply_mask_reference` computed `i + offset`, which overflows (a panic
/// with overflow checks on) for offsets near `usize::MAX`; `apply_mask`
/// takes any offset. Both must agree for every offset.
#[test]
fn mask_reference_takes_any_offset() {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for offset in [usize::MAX, usize::MAX - 1, usize::MAX - 2, usize::MAX - 3] {
        let mut fast = *b"Hello, world";
        let mut slow = fast;
        crate::apply_mask(&mut fast, key, offset);
        crate::apply_mask_reference(&mut slow, key, offset);
        assert_eq!(fast, slow, "offset {offset}");
    }
}

use std::time::Instant;

use super::pair::{drain, seeded, REQUEST};
use crate::{ClientRequest, Connection, Event, SendError};

/// Feeds `pieces` to a fresh server (or client, offering the RFC 6455 §1.3
/// key), draining events after each; returns them all.
fn events(mut conn: Connection, pieces: &[&[u8]]) -> Vec<Event> {
    let now = Instant::now();
    let mut all = Vec::new();
    for piece in pieces {
        conn.receive(now, piece);
        all.extend(drain(&mut conn));
    }
    all
}

fn server() -> Connection {
    Connection::server(seeded(), Instant::now())
}

fn client() -> Connection {
    let request = ClientRequest::new("server.example.com", "/chat").key(*b"the sample nonce");
    Connection::client(request, seeded(), Instant::now()).unwrap()
}

/// `fuzz/` targets `server_stream` (crash-739f9e6bd736cd53f68c565f61c19a9a6988a1c5)
/// and `client_stream` (crash-795738ef77d998c9ca9c37f46087e2ee20e61dc3): an
/// empty line before the start line was taken for the end of the head, but
/// the HTTP parser was handed the whole buffer and skips leading empty lines,
/// so the verdict depended on how the bytes were split: read at once, the
/// head after the empty line was parsed; read `\n\r\n` first, the head was
/// "incomplete". Any split must give the same events.
#[test]
fn head_verdict_does_not_depend_on_how_it_is_split() {
    let crash: &[u8] = b"\n\r\nocket\r\nConnection: upgrade\x00\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05Hello";
    let request = [b"\n\r\n", REQUEST.as_bytes()].concat();
    for input in [crash, &request] {
        let whole = events(server(), &[input]);
        assert_eq!(events(server(), &[&input[..3], &input[3..]]), whole);
    }
    let response = b"\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    for input in [&b"\n\n\x00"[..], response] {
        let whole = events(client(), &[input]);
        let cut = if input[1] == b'\n' { 2 } else { 3 };
        assert_eq!(events(client(), &[&input[..cut], &input[cut..]]), whole);
    }
}

/// `fuzz/` target `handshake_request` (crash-4c7df137f63ccf8e374ae4605353856cd77a49f6):
/// the client generator accepted subprotocols that are not HTTP tokens
/// (empty, padded, holding commas, spaces or separators). The server, which
/// splits the header at commas and trims, then saw other subprotocols than
/// were offered, and a server choosing one it saw was refused by the client.
#[test]
fn client_refuses_subprotocols_that_are_not_tokens() {
    let offer = |p: &str| Connection::client(ClientRequest::new("h", "/").protocol(p), seeded(), Instant::now()).err();
    for bad in ["", "et-Accept: ", " chat", "chat ", "a,b", "a b", "chat\t", "chat;v=1", "ü"] {
        assert_eq!(offer(bad), Some(SendError::InvalidHeader("Sec-WebSocket-Protocol".into())), "{bad:?}");
    }
    for good in ["chat", "v2.json+x", "wamp.2.msgpack", "a!#$%&'*+-.^_`|~9"] {
        assert_eq!(offer(good), None, "{good:?}");
    }
}

/// `fuzz/` target `handshake_request` (crash-aa8c6dde4ed6ff3acbe53901c8d248bb6d71dbe9):
/// the client generator accepted an empty (or blank) Host, which every
/// server, ours included, must refuse (RFC 6455 §4.1, RFC 7230 §5.4).
#[test]
fn client_refuses_an_empty_host() {
    for host in ["", " ", "\t \t"] {
        let result = Connection::client(ClientRequest::new(host, "/"), seeded(), Instant::now());
        assert_eq!(result.err(), Some(SendError::InvalidHeader("Host".into())), "{host:?}");
    }
}
