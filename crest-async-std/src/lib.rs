//! # crest-async-std
//!
//! WebSockets (RFC 6455) on async-std and smol, with the callback API of the
//! crest product page: a [`WebSocketServer`] with `on_connect`, `on_message`,
//! `on_binary`, `on_close`, `on_error`, `broadcast`; connection handles
//! ([`Conn`]) with `id()`, `send`, `send_binary`, `close`, `is_open`; an
//! [`App`] that routes `/ws` and serves pages, and `run("0.0.0.0", 8000)`.
//!
//! The API is `crest-tokio`'s, name for name: switching runtimes means
//! changing the crate name.
//!
//! ```text
//!                 bytes                                       callbacks
//!   Async<TcpStream> ──read──▶ driver task ──▶ crest_driver::Session ──▶ on_connect / on_message / ...
//!   Async<TcpStream> ◀─write── (one loop)  ◀── crest_proto::Connection ◀── conn.send / ws.broadcast
//!                                ▲ Deadline(poll_timeout)          ▲ Conn handles wake it
//! ```
//!
//! This crate is thin: it owns the sockets, the tasks and the timers. The
//! protocol is `crest-proto`'s; routing, callbacks, the registry, broadcast
//! and every decision of the per-connection loop are `crest-driver`'s,
//! shared with `crest-tokio`.
//!
//! ## async-std and smol
//!
//! Sockets are async-io's (`Async<TcpStream>`), the reactor that async-std
//! and smol both run on, and the I/O traits are futures-io's; nothing here
//! needs a particular executor. Connection deadlines (handshake, closing
//! handshake, heartbeat) run on crest-driver's timer thread
//! ([`crest_driver::timer`]), as in crest-tokio: a deadline that moves later
//! with every message (the idle timeout) registers about once per period
//! there, where async-io's `Timer::set_at` would wake the reactor each time.
//! Connection tasks are spawned with `async_std::task::spawn` unless told
//! otherwise:
//! [`App::spawn_with`] and [`Connect::connect_with`] take any spawn function
//! (`|task| smol::spawn(task).detach()`), and [`WebSocket<S>`] runs over any
//! futures-io stream.
//!
//! ## Example: the product page's server
//!
//! ```no_run
//! use crest_async_std::{App, WebSocketServer};
//!
//! fn main() -> std::io::Result<()> {
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
//!     app.run_blocking("0.0.0.0", 8000) // on async-std's executor
//! }
//! ```
//!
//! ## Example: a server and a client in one test, on async-std
//!
//! ```
//! use crest_async_std::{App, Connect, WebSocketClient, WebSocketServer};
//!
//! # fn main() -> crest_async_std::Result<()> { async_std::task::block_on(async {
//! let ws = WebSocketServer::new();
//! ws.on_message(|conn, msg| { let _ = conn.send(msg); }); // echo
//! let mut app = App::new();
//! app.route("/echo", &ws);
//! let shutdown = app.shutdown_handle();
//! let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/echo", listener.local_addr()?);
//! let server = async_std::task::spawn(app.serve(listener));
//!
//! let (tx, rx) = async_std::channel::unbounded();
//! let client = WebSocketClient::new();
//! client.on_message(move |_conn, msg| { let _ = tx.try_send(msg.to_string()); });
//! let conn = client.connect(&url).await?;
//! conn.send("hello")?;
//! assert_eq!(rx.recv().await.as_deref(), Ok("hello"));
//!
//! shutdown.trigger(); // closes every connection with 1001, then returns
//! server.await?;
//! assert!(!conn.is_open());
//! # Ok(()) }) }
//! ```
//!
//! ## Example: the same on smol
//!
//! ```
//! use std::net::TcpListener;
//! use crest_async_std::{App, Async, Connect, WebSocketClient, WebSocketServer};
//!
//! # fn main() -> crest_async_std::Result<()> { smol::block_on(async {
//! let ws = WebSocketServer::new();
//! ws.on_message(|conn, msg| { let _ = conn.send(msg); });
//! let mut app = App::new();
//! app.route("/echo", &ws).spawn_with(|task| smol::spawn(task).detach());
//! let shutdown = app.shutdown_handle();
//! let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0))?;
//! let url = format!("ws://{}/echo", listener.get_ref().local_addr()?);
//! let server = smol::spawn(app.serve(listener));
//!
//! let (tx, rx) = smol::channel::unbounded();
//! let client = WebSocketClient::new();
//! client.on_message(move |_conn, msg| { let _ = tx.try_send(msg.to_string()); });
//! let conn = client.connect_with(&url, |task| smol::spawn(task).detach()).await?;
//! conn.send("hello")?;
//! assert_eq!(rx.recv().await.as_deref(), Ok("hello"));
//!
//! shutdown.trigger();
//! server.await?;
//! assert!(!conn.is_open());
//! # Ok(()) }) }
//! ```
#![warn(missing_docs, unreachable_pub)]

mod client;
mod driver;
mod server;
mod stream;

pub use client::{connect, Connect};
pub use driver::{Task, TcpSocket};
pub use server::{App, IntoListener};
pub use stream::{Socket, WebSocket};

pub use async_io::Async;
pub use crest_driver::{
    Accept, Bytes, ClientRequest, CloseCode, CloseFrame, Config, Conn, ConnId, DeflateConfig, Error, Message, Payload,
    Request, Response, Result, Role, Settings, Shutdown, Text, UpgradeHook, WebSocketClient, WebSocketServer,
};
