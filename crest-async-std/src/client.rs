//! Client connections: [`Connect::connect`] with callbacks, or [`connect`]
//! for a `Stream + Sink` of messages.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Instant;

use async_io::Async;
use crest_driver::{Conn, Result, Session, WebSocketClient};

use crate::driver::{Driver, Task};
use crate::stream::WebSocket;

/// `connect(url)` for a [`WebSocketClient`]: the connection runs in its own
/// task and calls the client's callbacks, like a server's connections.
///
/// ```no_run
/// use crest_async_std::{Connect, WebSocketClient};
///
/// # async fn demo() -> crest_async_std::Result<()> {
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
    /// the opening handshake completed and `on_connect` ran. The connection's
    /// task is spawned with `async_std::task::spawn`.
    ///
    /// # Errors
    /// A malformed URL, `wss://` ([`Error::TlsRequired`](crate::Error::TlsRequired)), a failed TCP
    /// connection, or a refused handshake (`Error::Protocol` with the HTTP
    /// status in its `HandshakeError`).
    fn connect(&self, url: &str) -> impl Future<Output = Result<Conn>> + Send;

    /// Like [`connect`](Self::connect), starting the connection's [`Task`]
    /// with `spawn`: e.g. `|task| smol::spawn(task).detach()` on smol.
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
    fn connect_stream(&self, url: &str) -> impl Future<Output = Result<WebSocket<async_std::net::TcpStream>>> + Send;
}

impl Connect for WebSocketClient {
    async fn connect(&self, url: &str) -> Result<Conn> {
        self.connect_with(url, |task| drop(async_std::task::spawn(task))).await
    }

    async fn connect_with(&self, url: &str, spawn: impl FnOnce(Task) + Send) -> Result<Conn> {
        let plan = self.plan(url)?;
        let stream = tcp_connect(&plan.host, plan.port).await?;
        let peer = stream.get_ref().peer_addr()?;
        let mut driver = Driver::new(Session::connect(plan, peer, Instant::now())?, stream);
        poll_fn(|cx| driver.drive(cx, Session::has_opened)).await;
        let conn = driver.session.connected()?;
        spawn(Task::new(driver));
        Ok(conn)
    }

    async fn connect_stream(&self, url: &str) -> Result<WebSocket<async_std::net::TcpStream>> {
        let plan = self.plan(url)?;
        let stream = tcp_connect(&plan.host, plan.port).await?.into_inner()?;
        WebSocket::client(stream.into(), plan.request, plan.config).await
    }
}

/// Opens a client connection to `url` as a [`WebSocket`]: a `Stream` of
/// received messages and a `Sink` of messages to send.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use crest_async_std::Message;
///
/// # async fn demo() -> crest_async_std::Result<()> {
/// let mut ws = crest_async_std::connect("ws://localhost:8000/ws").await?;
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
pub async fn connect(url: &str) -> Result<WebSocket<async_std::net::TcpStream>> {
    WebSocketClient::new().connect_stream(url).await
}

/// Connects to the first address of `host:port` that accepts, with
/// `TCP_NODELAY`. Names are resolved on a blocking thread (`blocking`'s
/// pool, which async-std and smol share), IP literals on the spot.
async fn tcp_connect(host: &str, port: u16) -> io::Result<Async<TcpStream>> {
    let addrs: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let host = host.to_owned();
            blocking::unblock(move || (host, port).to_socket_addrs().map(Iterator::collect)).await?
        }
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(stream) => {
                stream.get_ref().set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
