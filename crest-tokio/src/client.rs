//! Client connections: [`Connect::connect`] with callbacks, or [`connect`]
//! for a `Stream + Sink` of messages.

use std::future::{poll_fn, Future};
use std::time::Instant;

use crest_driver::{Conn, Result, Session, WebSocketClient};
use tokio::net::TcpStream;

use crate::driver::{Driver, Task};
use crate::stream::WebSocket;

/// `connect(url)` for a [`WebSocketClient`]: the connection runs in its own
/// task and calls the client's callbacks, like a server's connections.
///
/// ```no_run
/// use crest_tokio::{Connect, WebSocketClient};
///
/// # async fn demo() -> crest_tokio::Result<()> {
/// let client = WebSocketClient::new();
/// client.on_connect(|conn| { let _ = conn.send(r#"{"type":"join","username":"Alice"}"#); });
/// client.on_message(|_conn, message| println!("Received: {message}"));
/// client.on_close(|_conn, code, reason| println!("Disconnected: {code} {reason}"));
/// let conn = client.connect("ws://localhost:8000/ws").await?;
/// conn.send(r#"{"type":"message","text":"hi"}"#)?;
/// # Ok(()) }
/// ```
pub trait Connect {
    /// Opens a connection to `url` (`ws://host[:port][/path]`): resolves once
    /// the opening handshake completed and `on_connect` ran.
    ///
    /// # Errors
    /// A malformed URL, `wss://` ([`Error::TlsRequired`](crate::Error::TlsRequired)), a failed TCP
    /// connection, or a refused handshake (`Error::Protocol` with the HTTP
    /// status in its `HandshakeError`).
    fn connect(&self, url: &str) -> impl Future<Output = Result<Conn>> + Send;

    /// Like [`connect`](Self::connect), starting the connection's [`Task`]
    /// with `spawn` instead of `tokio::spawn`: e.g. to await it, which ends
    /// once the connection is finished and its socket closed.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    fn connect_with(&self, url: &str, spawn: impl FnOnce(Task) + Send) -> impl Future<Output = Result<Conn>> + Send;

    /// Opens a connection to `url` as a [`WebSocket`] (`Stream + Sink`) with
    /// this client's subprotocols, headers, limits and compression; its
    /// callbacks are not used. [`connect`] is this with a default client.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    fn connect_stream(&self, url: &str) -> impl Future<Output = Result<WebSocket<TcpStream>>> + Send;
}

impl Connect for WebSocketClient {
    async fn connect(&self, url: &str) -> Result<Conn> {
        self.connect_with(url, |task| drop(tokio::spawn(task))).await
    }

    async fn connect_with(&self, url: &str, spawn: impl FnOnce(Task) + Send) -> Result<Conn> {
        let plan = self.plan(url)?;
        let stream = TcpStream::connect((plan.host.as_str(), plan.port)).await?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let mut driver = Driver::new(Session::connect(plan, peer, Instant::now())?, stream);
        poll_fn(|cx| driver.drive(cx, Session::has_opened)).await;
        let conn = driver.session.connected()?;
        spawn(Task::new(driver));
        Ok(conn)
    }

    async fn connect_stream(&self, url: &str) -> Result<WebSocket<TcpStream>> {
        let plan = self.plan(url)?;
        let stream = TcpStream::connect((plan.host.as_str(), plan.port)).await?;
        stream.set_nodelay(true)?;
        WebSocket::client(stream, plan.request, plan.config).await
    }
}

/// Opens a client connection to `url` as a [`WebSocket`]: a `Stream` of
/// received messages and a `Sink` of messages to send.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use crest_tokio::Message;
///
/// # async fn demo() -> crest_tokio::Result<()> {
/// let mut ws = crest_tokio::connect("ws://localhost:8000/ws").await?;
/// ws.send(Message::text("hello")).await?;
/// while let Some(message) = ws.next().await {
///     println!("{:?}", message?);
/// }
/// # Ok(()) }
/// ```
///
/// With subprotocols, extra headers, other limits or compression: build a
/// [`WebSocketClient`] and call [`Connect::connect_stream`].
///
/// # Errors
/// As [`Connect::connect`].
pub async fn connect(url: &str) -> Result<WebSocket<TcpStream>> {
    WebSocketClient::new().connect_stream(url).await
}
