//! The harness of crest's parity suite.
//!
//! Every behaviour scenario is an `async fn scenario<R: Runtime>()` written
//! once; the [`parity!`] macro instantiates it as a `#[test]` per runtime:
//!
//! | runtime      | adapter          | executor of the connections          |
//! |--------------|------------------|--------------------------------------|
//! | [`Tokio`]    | `crest-tokio`    | a multi-threaded tokio runtime       |
//! | [`AsyncStd`] | `crest-async-std`| async-std's (`task::spawn`)          |
//! | [`Smol`]     | `crest-async-std`| smol's (`App::spawn_with(smol::spawn)`) |
//!
//! [`Runtime`] is the only runtime-specific part: run a test body, spawn a
//! task, serve an app on `127.0.0.1:0`, connect a client. The peers are
//! runtime-neutral (async-io sockets, which work under any runtime): raw TCP
//! for what no well-behaved library sends, and async-tungstenite (the same
//! tungstenite as tokio-tungstenite) as an independent implementation.
//! Every wait is bounded by [`within`]; nothing sleeps to wait for a server.
#![allow(clippy::missing_panics_doc)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Duration;

use async_io::Async;
use async_tungstenite::tungstenite::Message as TMessage;
use async_tungstenite::WebSocketStream;
use crest_driver::{CloseCode, CloseFrame, Conn, Error, Message, Result, Shutdown, WebSocketClient, WebSocketServer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_util::{Sink, SinkExt, Stream, StreamExt};

pub use async_tungstenite::tungstenite;

/// A boxed `Send` future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Every wait in the tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(f: F) -> F::Output {
    let timeout = async {
        async_io::Timer::after(LIMIT).await;
        panic!("timed out after {LIMIT:?}");
    };
    futures_lite::future::or(f, timeout).await
}

/// What an app serves: the part of `App` the tests use, built before the
/// runtime's `App`.
#[derive(Default, Clone)]
pub struct AppSpec {
    routes: Vec<(String, WebSocketServer)>,
    pages: Vec<(String, &'static str)>,
    config: Option<crest_driver::Config>,
}

impl AppSpec {
    /// An app with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// `App::route`.
    pub fn route(mut self, path: &str, ws: &WebSocketServer) -> Self {
        self.routes.push((path.into(), ws.clone()));
        self
    }

    /// `App::page`.
    pub fn page(mut self, path: &str, html: &'static str) -> Self {
        self.pages.push((path.into(), html));
        self
    }

    /// `App::config`: the handshake limits and timeout, before routing.
    pub fn config(mut self, config: crest_driver::Config) -> Self {
        self.config = Some(config);
        self
    }
}

/// Builds an adapter's `App` from an [`AppSpec`] (the two `App`s have the
/// same methods, but no common trait).
macro_rules! build_app {
    ($app:ty, $spec:expr) => {{
        let mut app = <$app>::new();
        for (path, ws) in &$spec.routes {
            app.route(path.clone(), ws);
        }
        for (path, html) in &$spec.pages {
            app.page(path.clone(), *html);
        }
        if let Some(config) = &$spec.config {
            app.config(config.clone());
        }
        app
    }};
}

/// An app serving on `127.0.0.1:<free port>`.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shutdown handle.
    pub shutdown: Shutdown,
    task: BoxFuture<io::Result<()>>,
}

impl Server {
    /// `ws://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Graceful shutdown; returns once every connection is drained.
    pub async fn stop(self) {
        self.shutdown.trigger();
        within(self.task).await.unwrap();
    }
}

/// A WebSocket `Stream + Sink` of one of the adapters.
pub trait WsStream: Stream<Item = Result<Message>> + Sink<Message, Error = Error> + Unpin + Send {
    /// `WebSocket::close_frame`.
    fn close_frame(&self) -> Option<&CloseFrame>;
    /// `WebSocket::protocol`.
    fn protocol(&self) -> Option<&str>;
}

/// What differs between the runtimes; everything else is shared.
pub trait Runtime: Sized + 'static {
    /// For messages.
    const NAME: &'static str;

    /// The adapter's `WebSocket` over its TCP stream.
    type Ws: WsStream;

    /// Runs a test body to completion.
    fn block_on<F: Future>(f: F) -> F::Output;

    /// Spawns a task; the future resolves to its output, dropping it
    /// detaches the task.
    fn spawn<F>(f: F) -> BoxFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Serves `app` on `127.0.0.1:0`, the adapter's `App::serve` in a task.
    fn serve(app: AppSpec) -> impl Future<Output = Server>;

    /// `client.connect(url)` (the adapter's `Connect`).
    fn connect(client: &WebSocketClient, url: &str) -> impl Future<Output = Result<Conn>>;

    /// The adapter's `Connect::connect_stream`: a `Stream + Sink` client
    /// with `client`'s options.
    fn connect_stream(client: &WebSocketClient, url: &str) -> impl Future<Output = Result<Self::Ws>>;

    /// A server made of the adapter's `WebSocket::accept` on its own TCP
    /// listener: accepts one connection, echoes text and binary until the
    /// stream ends; the task yields how it closed.
    fn stream_echo_server() -> impl Future<Output = (SocketAddr, BoxFuture<Option<CloseFrame>>)>;

    /// The adapter's `WebSocket::client` over its own TCP stream to `addr`.
    fn stream_client(addr: SocketAddr, path: &str) -> impl Future<Output = Result<Self::Ws>>;
}

/// A listener on `127.0.0.1:<free port>` with the backlog the adapters'
/// `App::run` use (1024; std's `bind` uses 128, which the reliability
/// suite's bursts of connects overflow, delaying them by SYN retries).
pub fn listener() -> TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.listen(1024).unwrap();
    socket.into()
}

/// Runs `body` on `R`: the tests' entry point.
pub fn run<R: Runtime, F: Future<Output = ()>>(body: F) {
    R::block_on(body);
}

/// Instantiates each named `async fn name<R: Runtime>()` as a `#[test]` on
/// every runtime: `tokio::name`, `async_std::name`, `smol::name`.
#[macro_export]
macro_rules! parity {
    ($($name:ident),* $(,)?) => {
        $crate::parity!(@on tokio, $crate::Tokio, $($name),*);
        $crate::parity!(@on async_std, $crate::AsyncStd, $($name),*);
        $crate::parity!(@on smol, $crate::Smol, $($name),*);
    };
    (@on $module:ident, $rt:ty, $($name:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    $crate::run::<$rt, _>(super::$name::<$rt>());
                }
            )*
        }
    };
}

// ----- tokio -----

/// `crest-tokio` on a multi-threaded tokio runtime shared by the tests
/// (also by cross-runtime tests whose bodies run elsewhere: its workers
/// drive its reactor).
#[derive(Debug)]
pub struct Tokio;

static TOKIO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
});

impl WsStream for crest_tokio::WebSocket<tokio::net::TcpStream> {
    fn close_frame(&self) -> Option<&CloseFrame> {
        crest_tokio::WebSocket::close_frame(self)
    }

    fn protocol(&self) -> Option<&str> {
        crest_tokio::WebSocket::protocol(self)
    }
}

impl Runtime for Tokio {
    const NAME: &'static str = "tokio";
    type Ws = crest_tokio::WebSocket<tokio::net::TcpStream>;

    fn block_on<F: Future>(f: F) -> F::Output {
        TOKIO.block_on(f)
    }

    fn spawn<F>(f: F) -> BoxFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = TOKIO.spawn(f);
        Box::pin(async move { task.await.expect("task panicked") })
    }

    async fn serve(spec: AppSpec) -> Server {
        let app = build_app!(crest_tokio::App, spec);
        let shutdown = app.shutdown_handle();
        let listener = listener();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let task = TOKIO.spawn(async move { app.serve(tokio::net::TcpListener::from_std(listener)?).await });
        Server { addr, shutdown, task: Box::pin(async move { task.await.expect("serve panicked") }) }
    }

    async fn connect(client: &WebSocketClient, url: &str) -> Result<Conn> {
        use crest_tokio::Connect;
        let (client, url) = (client.clone(), url.to_owned());
        // In the runtime's context, wherever the caller runs.
        TOKIO.spawn(async move { client.connect(&url).await }).await.expect("connect panicked")
    }

    async fn connect_stream(client: &WebSocketClient, url: &str) -> Result<Self::Ws> {
        use crest_tokio::Connect;
        let (client, url) = (client.clone(), url.to_owned());
        TOKIO.spawn(async move { client.connect_stream(&url).await }).await.expect("connect panicked")
    }

    async fn stream_echo_server() -> (SocketAddr, BoxFuture<Option<CloseFrame>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let task = Self::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = crest_tokio::WebSocket::accept(tcp, crest_driver::Config::default()).await.unwrap();
            echo_stream(ws).await
        });
        (addr, task)
    }

    async fn stream_client(addr: SocketAddr, path: &str) -> Result<Self::Ws> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let request = crest_driver::ClientRequest::new(addr.to_string(), path);
        crest_tokio::WebSocket::client(tcp, request, crest_driver::Config::default()).await
    }
}

// ----- async-std -----

/// `crest-async-std` on async-std's executor.
#[derive(Debug)]
pub struct AsyncStd;

impl<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send> WsStream for crest_async_std::WebSocket<S> {
    fn close_frame(&self) -> Option<&CloseFrame> {
        crest_async_std::WebSocket::close_frame(self)
    }

    fn protocol(&self) -> Option<&str> {
        crest_async_std::WebSocket::protocol(self)
    }
}

impl Runtime for AsyncStd {
    const NAME: &'static str = "async-std";
    type Ws = crest_async_std::WebSocket<async_std::net::TcpStream>;

    fn block_on<F: Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }

    fn spawn<F>(f: F) -> BoxFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Box::pin(async_std::task::spawn(f))
    }

    async fn serve(spec: AppSpec) -> Server {
        let app = build_app!(crest_async_std::App, spec);
        let shutdown = app.shutdown_handle();
        let listener = listener();
        let addr = listener.local_addr().unwrap();
        Server { addr, shutdown, task: Self::spawn(app.serve(listener)) }
    }

    async fn connect(client: &WebSocketClient, url: &str) -> Result<Conn> {
        use crest_async_std::Connect;
        client.connect(url).await
    }

    async fn connect_stream(client: &WebSocketClient, url: &str) -> Result<Self::Ws> {
        use crest_async_std::Connect;
        client.connect_stream(url).await
    }

    async fn stream_echo_server() -> (SocketAddr, BoxFuture<Option<CloseFrame>>) {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = Self::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = crest_async_std::WebSocket::accept(tcp, crest_driver::Config::default()).await.unwrap();
            echo_stream(ws).await
        });
        (addr, task)
    }

    async fn stream_client(addr: SocketAddr, path: &str) -> Result<Self::Ws> {
        let tcp = async_std::net::TcpStream::connect(addr).await?;
        let request = crest_driver::ClientRequest::new(addr.to_string(), path);
        crest_async_std::WebSocket::client(tcp, request, crest_driver::Config::default()).await
    }
}

// ----- smol -----

/// `crest-async-std` on smol: connections spawned on smol's executor with
/// `App::spawn_with` / `Connect::connect_with`, smol's `Async` sockets.
#[derive(Debug)]
pub struct Smol;

fn smol_spawn(task: crest_async_std::Task) {
    smol::spawn(task).detach();
}

impl Runtime for Smol {
    const NAME: &'static str = "smol";
    type Ws = crest_async_std::WebSocket<Async<TcpStream>>;

    fn block_on<F: Future>(f: F) -> F::Output {
        smol::block_on(f)
    }

    fn spawn<F>(f: F) -> BoxFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Dropping the returned future detaches the task (as with tokio and
        // async-std), where dropping a `smol::Task` would cancel it.
        let (tx, rx) = async_channel::bounded(1);
        smol::spawn(async move { drop(tx.try_send(f.await)) }).detach();
        Box::pin(async move { rx.recv().await.expect("task panicked") })
    }

    async fn serve(spec: AppSpec) -> Server {
        let mut app = build_app!(crest_async_std::App, spec);
        app.spawn_with(smol_spawn);
        let shutdown = app.shutdown_handle();
        let listener = Async::new(listener()).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        Server { addr, shutdown, task: Self::spawn(app.serve(listener)) }
    }

    async fn connect(client: &WebSocketClient, url: &str) -> Result<Conn> {
        use crest_async_std::Connect;
        client.connect_with(url, smol_spawn).await
    }

    async fn connect_stream(client: &WebSocketClient, url: &str) -> Result<Self::Ws> {
        // smol's own sockets: `WebSocket::client` over an `Async<TcpStream>`,
        // with the request and limits the client plans for `url`.
        let plan = client.plan(url)?;
        let tcp = Async::<TcpStream>::connect(url_addr(url)).await?;
        crest_async_std::WebSocket::client(tcp, plan.request, plan.config).await
    }

    async fn stream_echo_server() -> (SocketAddr, BoxFuture<Option<CloseFrame>>) {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let task = Self::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = crest_async_std::WebSocket::accept(tcp, crest_driver::Config::default()).await.unwrap();
            echo_stream(ws).await
        });
        (addr, task)
    }

    async fn stream_client(addr: SocketAddr, path: &str) -> Result<Self::Ws> {
        let tcp = Async::<TcpStream>::connect(addr).await?;
        let request = crest_driver::ClientRequest::new(addr.to_string(), path);
        crest_async_std::WebSocket::client(tcp, request, crest_driver::Config::default()).await
    }
}

/// Echoes text and binary until the stream ends; returns how it closed.
async fn echo_stream<W: WsStream>(mut ws: W) -> Option<CloseFrame> {
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Text(_) | Message::Binary(_)) && ws.send(m).await.is_err() {
            break;
        }
    }
    ws.close_frame().cloned()
}

// ----- apps -----

/// An app with `ws` at `/ws`.
pub async fn serve_ws<R: Runtime>(ws: &WebSocketServer) -> Server {
    R::serve(AppSpec::new().route("/ws", ws)).await
}

/// An echo server at `/ws` (text and binary).
pub async fn echo_server<R: Runtime>() -> (WebSocketServer, Server) {
    let ws = WebSocketServer::new();
    ws.on_message(|conn, text| drop(conn.send(text)));
    ws.on_binary(|conn, data| drop(conn.send_binary(data)));
    let server = serve_ws::<R>(&ws).await;
    (ws, server)
}

// ----- recording callbacks -----

/// What the callbacks of a server saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// `on_connect(id)`.
    Connect(u64),
    /// `on_message(id, text)`.
    Text(u64, String),
    /// `on_binary(id, len)`.
    Binary(u64, usize),
    /// `on_error(id, message)`.
    Error(u64, String),
    /// `on_close(id, code, reason)`.
    Close(u64, u16, String),
}

/// The receiving end of [`record`].
pub type Events = async_channel::Receiver<Ev>;

/// Records every callback of `ws` (replacing its callbacks).
pub fn record(ws: &WebSocketServer) -> Events {
    record_with(ws, false)
}

/// Records every callback of `ws` (replacing its callbacks), and with
/// `echo` sends every text and binary message back.
pub fn record_with(ws: &WebSocketServer, echo: bool) -> Events {
    let (tx, rx) = async_channel::unbounded();
    let t = tx.clone();
    ws.on_connect(move |c| drop(t.try_send(Ev::Connect(c.id().get()))));
    let t = tx.clone();
    ws.on_message(move |c, m| {
        let _ = t.try_send(Ev::Text(c.id().get(), m.to_string()));
        if echo {
            let _ = c.send(m);
        }
    });
    let t = tx.clone();
    ws.on_binary(move |c, b| {
        let _ = t.try_send(Ev::Binary(c.id().get(), b.len()));
        if echo {
            let _ = c.send_binary(b);
        }
    });
    let t = tx.clone();
    ws.on_error(move |c, e| drop(t.try_send(Ev::Error(c.id().get(), e.to_string()))));
    ws.on_close(move |c, code, reason| drop(tx.try_send(Ev::Close(c.id().get(), code.0, reason.into()))));
    rx
}

/// The next recorded event.
pub async fn next_ev(rx: &Events) -> Ev {
    within(rx.recv()).await.expect("recorder closed")
}

/// The id of the next event, which must be `Connect`.
pub async fn next_connect(rx: &Events) -> u64 {
    match next_ev(rx).await {
        Ev::Connect(id) => id,
        other => panic!("expected on_connect, got {other:?}"),
    }
}

// ----- tungstenite peers (async-tungstenite over async-io sockets) -----

/// An independent WebSocket client.
pub type Peer = WebSocketStream<Async<TcpStream>>;

/// The address in a `ws://host:port/...` URL of a test server.
pub fn url_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).parse().expect("ws://IP:PORT/...")
}

/// Connects a tungstenite client with this request.
///
/// # Errors
/// Whatever tungstenite reports (e.g. `Error::Http` for a refused upgrade).
pub async fn try_peer<Q>(request: Q) -> Result<(Peer, tungstenite::handshake::client::Response), tungstenite::Error>
where
    Q: tungstenite::client::IntoClientRequest + Unpin,
{
    let request = request.into_client_request()?;
    let addr = url_addr(&request.uri().to_string());
    let tcp = Async::<TcpStream>::connect(addr).await?;
    async_tungstenite::client_async(request, tcp).await
}

/// A connected tungstenite client.
pub async fn peer(url: &str) -> Peer {
    within(try_peer(url)).await.unwrap().0
}

/// The next data or close message, answering nothing (tungstenite queues
/// Pongs itself).
pub async fn next_msg(peer: &mut Peer) -> TMessage {
    loop {
        match within(peer.next()).await {
            Some(Ok(TMessage::Ping(_) | TMessage::Pong(_))) => continue,
            Some(Ok(m)) => return m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// The next message, which must be text.
pub async fn next_text(peer: &mut Peer) -> String {
    match next_msg(peer).await {
        TMessage::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends a text message.
pub async fn send_text(peer: &mut Peer, text: &str) {
    within(peer.send(TMessage::text(text))).await.unwrap();
}

/// Reads until the peer's Close; returns its code and reason.
pub async fn next_close(peer: &mut Peer) -> (u16, String) {
    loop {
        match within(peer.next()).await {
            Some(Ok(TMessage::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(TMessage::Close(None))) => return (CloseCode::NO_STATUS_RECEIVED.0, String::new()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

/// Reads until the peer's Close, then keeps polling until the stream ends,
/// so that tungstenite sends its Close reply (it flushes on the next poll).
pub async fn finish_close(peer: &mut Peer) -> (u16, String) {
    let close = next_close(peer).await;
    while let Some(Ok(_)) = within(peer.next()).await {}
    close
}

/// A tungstenite echo server (text and binary); returns its address.
pub fn tungstenite_echo_server<R: Runtime>() -> SocketAddr {
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    drop(R::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(R::spawn(async move {
                let Ok(mut ws) = async_tungstenite::accept_async(tcp).await else { return };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        break;
                    }
                }
            }));
        }
    }));
    addr
}

// ----- raw TCP peers (for what no well-behaved library does) -----

/// A raw TCP connection.
pub type Raw = Async<TcpStream>;

/// The `Sec-WebSocket-Key` of raw requests.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends `head` and returns the response head (and anything after it).
pub async fn raw_request(addr: SocketAddr, head: impl AsRef<[u8]>) -> (Raw, String) {
    let (tcp, bytes) = raw_exchange(addr, head).await;
    (tcp, String::from_utf8_lossy(&bytes).into_owned())
}

/// Sends `bytes` and returns what came back up to the end of the response
/// head (and anything after it in the same reads), as bytes.
pub async fn raw_exchange(addr: SocketAddr, bytes: impl AsRef<[u8]>) -> (Raw, Vec<u8>) {
    let mut tcp = raw_connect(addr).await;
    within(tcp.write_all(bytes.as_ref())).await.unwrap();
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = within(tcp.read(&mut chunk)).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    (tcp, buf)
}

/// An upgrade request head for `path`, with `extra` header lines.
pub fn upgrade_head(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A raw TCP connection to `addr`.
pub async fn raw_connect(addr: SocketAddr) -> Raw {
    within(Async::<TcpStream>::connect(addr)).await.unwrap()
}

/// A raw client after a successful upgrade.
pub async fn raw_ws(addr: SocketAddr, path: &str) -> Raw {
    let (tcp, head) = raw_request(addr, &upgrade_head(path, "")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    tcp
}

/// A masked client frame (mask key 0: the payload goes as is).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// The frames of a server's (unmasked) byte stream: `(first byte, payload)`
/// of each complete frame; a trailing partial frame is left out.
pub fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (len, at) = match bytes[1] & 0x7F {
            126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()), 10),
            126 | 127 => break,
            n => (u64::from(n), 2),
        };
        let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(at)).filter(|&e| e <= bytes.len()) else {
            break;
        };
        frames.push((bytes[0], bytes[at..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

/// The code and reason of the first Close frame in a server's byte stream.
pub fn close_in(bytes: &[u8]) -> Option<(u16, Vec<u8>)> {
    server_frames(bytes).into_iter().find(|(b0, _)| b0 & 0x0F == 8).map(|(_, p)| match p.len() {
        0 | 1 => (CloseCode::NO_STATUS_RECEIVED.0, Vec::new()),
        _ => (u16::from_be_bytes([p[0], p[1]]), p[2..].to_vec()),
    })
}

/// Reads until a Close frame from the server is complete (or EOF, or a
/// reset); returns everything read.
pub async fn read_until_close(tcp: &mut Raw) -> Vec<u8> {
    let mut all = Vec::new();
    within(async {
        let mut chunk = vec![0u8; 16 * 1024];
        while close_in(&all).is_none() {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    all
}

/// Waits (bounded by [`LIMIT`]) until `cond` holds, checking every
/// millisecond: for counters the server updates after the wire events a
/// test can await (a connection's task ending after its last byte).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting until {what}");
        async_io::Timer::after(Duration::from_millis(1)).await;
    }
}

/// This process's resident memory now and at its peak, in KiB
/// (`VmRSS`, `VmHWM` of `/proc/self/status`; zeros where there is none).
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Writes raw bytes.
pub async fn raw_write(tcp: &mut Raw, bytes: &[u8]) {
    within(tcp.write_all(bytes)).await.unwrap();
}

/// Reads until EOF (or a reset); returns everything read.
pub async fn read_to_end(tcp: &mut Raw) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = within(tcp.read_to_end(&mut all)).await;
    all
}

pub mod reliability;
