//! # crest-tokio
//!
//! WebSockets (RFC 6455) on tokio, with the callback API of the crest product
//! page: a [`WebSocketServer`] with `on_connect`, `on_message`, `on_binary`,
//! `on_close`, `on_error`, `broadcast`; connection handles ([`Conn`]) with
//! `id()`, `send`, `send_binary`, `close`, `is_open`; an [`App`] that routes
//! `/ws` and serves pages, and `run("0.0.0.0", 8000)`.
//!
//! ```text
//!            bytes                                   callbacks
//!   TcpStream ──read──▶ driver task ──▶ crest_driver::Session ──▶ on_connect / on_message / ...
//!   TcpStream ◀─write── (one loop)  ◀── crest_proto::Connection ◀── conn.send / ws.broadcast
//!                          ▲ Deadline(poll_timeout)      ▲ Conn handles wake it
//! ```
//!
//! This crate is thin: it owns the sockets and the tasks. The
//! protocol is `crest-proto`'s; routing, callbacks, the registry, broadcast
//! and every decision of the per-connection loop are `crest-driver`'s,
//! shared with `crest-async-std`.
//!
//! Deadlines (handshake, closing handshake, heartbeat) run on
//! crest-driver's timer thread ([`crest_driver::timer`]), not on tokio's
//! timer: a runtime built with only `enable_io()` is enough, and tokio's
//! time driver, which costs every wake-up of the runtime whether or not a
//! timer is armed, can be left out. (It does no harm either: `#[tokio::main]`
//! enables it.) `tokio::time::pause` does not move crest's deadlines.
//!
//! ## Example: the product page's server
//!
//! ```no_run
//! use crest_tokio::{App, WebSocketServer};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let mut app = App::new();
//!     let ws = WebSocketServer::new();
//!
//!     // Handle new connections
//!     ws.on_connect(|conn| {
//!         println!("Client connected: {}", conn.id());
//!         let _ = conn.send(r#"{"type":"welcome","message":"Connected!"}"#);
//!     });
//!     // Handle messages: broadcast to all clients
//!     let all = ws.clone();
//!     ws.on_message(move |_conn, message| {
//!         println!("Received: {message}");
//!         all.broadcast(message);
//!     });
//!     // Handle disconnections
//!     ws.on_close(|conn, _code, _reason| println!("Client disconnected: {}", conn.id()));
//!
//!     app.route("/ws", &ws);
//!     app.run("0.0.0.0", 8000).await
//! }
//! ```
//!
//! ## Example: a server and a client in one test
//!
//! ```
//! use crest_tokio::{App, Connect, WebSocketClient, WebSocketServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> crest_tokio::Result<()> {
//! let ws = WebSocketServer::new();
//! ws.on_message(|conn, msg| { let _ = conn.send(msg); }); // echo
//! let mut app = App::new();
//! app.route("/echo", &ws);
//! let shutdown = app.shutdown_handle();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/echo", listener.local_addr()?);
//! let server = tokio::spawn(app.serve(listener));
//!
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let client = WebSocketClient::new();
//! client.on_message(move |_conn, msg| { let _ = tx.send(msg.to_string()); });
//! let conn = client.connect(&url).await?;
//! conn.send("hello")?;
//! assert_eq!(rx.recv().await.as_deref(), Some("hello"));
//!
//! shutdown.trigger(); // closes every connection with 1001, then returns
//! server.await.unwrap()?;
//! assert!(!conn.is_open());
//! # Ok(()) }
//! ```
#![warn(missing_docs, unreachable_pub)]

mod client;
mod driver;
mod server;
mod stream;

pub use client::{connect, Connect};
pub use driver::Task;
pub use server::App;
pub use stream::{Socket, WebSocket};

pub use crest_driver::{
    Accept, Bytes, ClientRequest, CloseCode, CloseFrame, Config, Conn, ConnId, DeflateConfig, Error, Message, Payload,
    Request, Response, Result, Role, Settings, Shutdown, Text, UpgradeHook, WebSocketClient, WebSocketServer,
};
