//! # crest-proto
//!
//! A sans-IO implementation of the WebSocket protocol (RFC 6455): the opening
//! handshake for both sides, framing, masking, fragmentation, UTF-8
//! validation, ping/pong, the closing handshake, limits and timers. It never
//! touches a socket, a clock, a thread or a runtime, so it runs under tokio,
//! async-std, smol, a `mio` loop, blocking `std::net` sockets, or a test
//! that feeds it a `&[u8]`.
//!
//! ```text
//!            bytes                                  events
//!   socket ──receive()────▶ ┌──────────────────┐ ──poll_event()──▶ Request / Open / Text /
//!                           │ crest_proto::    │                   Binary / Ping / Pong /
//!   socket ◀─write(out)─────│   Connection     │ ◀─send()/close()  Error / Closed
//!           poll_transmit() └──────────────────┘
//!                       poll_timeout() ──▶ you sleep ──▶ handle_timeout(now)
//! ```
//!
//! After every input (`receive`, `receive_eof`, `handle_timeout`) or command
//! (`accept`, `respond`, `send`, `close`, ...): write what `poll_transmit`
//! gives, re-arm your timer with `poll_timeout`, then drain `poll_event`.
//!
//! ## Example: a client and a server talking through memory
//!
//! ```
//! use std::time::Instant;
//! use crest_proto::{Accept, ClientRequest, Config, Connection, Event, Message};
//!
//! let now = Instant::now();
//! let mut server = Connection::server(Config::default(), now);
//! let mut client = Connection::client(ClientRequest::new("example.com", "/chat"), Config::default(), now).unwrap();
//!
//! let mut wire = Vec::new();
//! client.poll_transmit(&mut wire); // the HTTP upgrade request
//! server.receive(now, &wire);
//! let Some(Event::Request(request)) = server.poll_event() else { panic!() };
//! assert_eq!(request.path(), "/chat");
//! server.accept(Accept::new()).unwrap(); // or server.respond(Response::new(403))
//! assert_eq!(server.poll_event(), Some(Event::Open));
//!
//! wire.clear();
//! server.poll_transmit(&mut wire); // 101 Switching Protocols
//! client.receive(now, &wire);
//! assert_eq!(client.poll_event(), Some(Event::Open));
//!
//! client.send(Message::text("hello")).unwrap();
//! wire.clear();
//! client.poll_transmit(&mut wire); // a masked text frame
//! server.receive(now, &wire);
//! match server.poll_event() {
//!     Some(Event::Text(text)) => assert_eq!(&*text, "hello"),
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! ## Design notes
//!
//! - Peer violations are events, never panics or `Err`s of `receive`: the
//!   right Close frame (1002/1007/1009) or HTTP error is queued, then
//!   [`Event::Error`] and [`Event::Closed`] are reported and input is ignored.
//! - Normal closure is an event ([`Event::Closed`]), not an error. Caller
//!   misuse is an `Err` of the call ([`SendError`]).
//! - Payloads are [`Payload`]s both ways: up to 22 bytes inline (no
//!   allocation, no reference count), larger ones [`bytes::Bytes`] — received
//!   ones are slices of the read buffer, unmasked in place, and large
//!   outgoing ones are never copied by a server; [`EncodedMessage`] encodes
//!   a broadcast once.
//! - Every limit in [`Config`] is checked before memory is allocated.
//! - Extensions plug in through [`extension`]; permessage-deflate (RFC 7692)
//!   is [`deflate`], added with [`Config::with_deflate`]. Inflating is
//!   bounded by the message-size limit as it goes.
//! - Time is an input (`now: Instant`), never read; randomness comes from a
//!   seed in [`Config`] or the OS through std.
#![warn(missing_docs, unreachable_pub)]

mod close;
mod config;
mod connection;
pub mod deflate;
mod error;
mod event;
pub mod extension;
pub mod frame;
pub mod handshake;
mod message;
mod payload;
mod recv;
mod state;
mod text;
mod timer;
mod tx;
pub mod utf8;

pub use close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
pub use config::Config;
pub use connection::Connection;
pub use error::{Error, HandshakeError, ProtocolError, SendError, TimeoutKind};
pub use event::Event;
pub use frame::mask::{apply_mask, apply_mask_reference};
pub use handshake::{accept_key, Accept, ClientRequest, Request, Response, UriError, WsUri};
pub use message::{EncodedMessage, Message};
pub use payload::{Payload, INLINE_CAPACITY};
pub use state::{Role, State};
pub use text::Text;

pub use bytes::{Bytes, BytesMut};

#[cfg(test)]
mod tests;
