//! # crest-driver
//!
//! The runtime-neutral half of crest's WebSocket adapters: everything that
//! `crest-tokio` and `crest-async-std` would otherwise both contain. No
//! sockets, tasks, timers or runtime types here; only `std`, `bytes`,
//! `crest-proto` and `tracing`.
//!
//! ```text
//!                 adapter (tokio, async-std)                  crest-driver
//!   socket ──read──▶ session.read_buf() / received(now) ──▶ ┌─────────────┐ ──▶ on_connect / on_message /
//!   socket ◀─write── session.io_slices() / transmitted(n) ◀─│   Session   │     on_binary / on_close / on_error
//!   timer  ──────▶ poll_timeout() / handle_timeout(now) ──▶ │ (Wire +     │
//!   waker  ──────▶ arm(waker) / handle_commands(now) ◀───── │  proto)     │ ◀── Conn::send / close,
//!                                                           └─────────────┘     WebSocketServer::broadcast
//! ```
//!
//! - [`WebSocketServer`]: an endpoint's callbacks, [`Settings`], the
//!   pre-upgrade hook ([`UpgradeHook`]), the registry of open connections and
//!   broadcast (encoded once, shared by all recipients).
//! - [`Conn`]: the handle to one connection, usable from any thread.
//! - [`Router`]: paths to endpoints and pages, 404/405/426 for the rest.
//! - [`Session`]: one connection's driver state machine: the adapter moves
//!   bytes, the session decides (routing, authentication, callbacks and
//!   their order, commands, slow consumers, shutdown, lingering close).
//! - [`Driver`]: the loop of a session's task over a [`Transport`] (the
//!   adapter's socket and timer): both adapters' callback connections run it.
//! - [`StreamCore`]: the same for a `Stream + Sink` of messages.
//! - [`Shutdown`]: graceful shutdown (close 1001 and drain).
//! - [`WebSocketClient`]: callbacks and options for outgoing connections.
//!
//! ## Example: a server session driven through memory
//!
//! An adapter does exactly this, with a socket instead of a `Vec`:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use crest_driver::{Router, Session, Transmit, WebSocketServer};
//!
//! let ws = WebSocketServer::new();
//! ws.on_message(|conn, msg| { let _ = conn.send(msg); }); // echo
//! let mut router = Router::new();
//! router.route("/ws", &ws);
//! let router = Arc::new(router);
//!
//! let now = Instant::now();
//! let mut session = Session::accept(&router, "127.0.0.1:50000".parse().unwrap(), now);
//! session.read_buf().extend_from_slice(
//!     b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
//!       \x81\x82\x00\x00\x00\x00hi", // a masked "hi" (mask key 0)
//! );
//! session.received(now);
//! session.handle_commands(|| now); // the echo queued by the callback
//!
//! let mut written = Vec::new();
//! while session.wants_write() {
//!     let mut iov = [std::io::IoSlice::new(&[]); 8];
//!     let n = session.io_slices(&mut iov);
//!     let len: usize = iov[..n].iter().map(|s| s.len()).sum();
//!     iov[..n].iter().for_each(|s| written.extend_from_slice(s));
//!     session.transmitted(len);
//! }
//! assert!(written.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! assert!(written.ends_with(b"\x81\x02hi"));
//! assert_eq!(ws.connection_count(), 1);
//! ```
#![warn(missing_docs, unreachable_pub)]

mod client;
mod conn;
mod driver;
mod error;
mod handler;
mod registry;
mod router;
mod server;
mod session;
mod shutdown;
mod stream;
pub mod timer;
pub mod wire;

pub use client::{ClientPlan, WebSocketClient};
pub use conn::{Conn, ConnId};
pub use driver::{Driver, Task};
pub use error::{Error, Result};
pub use router::Router;
pub use server::{Settings, UpgradeHook, WebSocketServer};
pub use session::Session;
pub use shutdown::{Shutdown, Wait};
pub use stream::{StreamCore, Transport, WebSocket};
pub use wire::{Transmit, Wire};

pub use bytes::{Bytes, BytesMut};
pub use crest_proto::deflate::DeflateConfig;
pub use crest_proto::{
    Accept, ClientRequest, CloseCode, CloseFrame, Config, Message, Payload, Request, Response, Role, Text,
};

#[cfg(test)]
mod tests;
