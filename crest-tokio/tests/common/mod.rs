//! Helpers for the behaviour tests: the only runtime-specific part.
//!
//! The tests are written against these few functions (start an app on
//! `127.0.0.1:0`, bound waits, a recorder of callback events, raw and
//! tokio-tungstenite peers) so that a parity suite can run the same tests
//! on another adapter by swapping this module.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crest_tokio::{App, CloseCode, Shutdown, WebSocketServer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in the tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// An app serving on `127.0.0.1:<free port>`.
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Graceful shutdown; returns once every connection is drained.
    pub async fn stop(self) {
        self.shutdown.trigger();
        within(self.task).await.unwrap().unwrap();
    }
}

pub async fn serve(app: App) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.serve(listener));
    Server { addr, shutdown, task }
}

/// An app with `ws` at `/ws`.
pub async fn serve_ws(ws: &WebSocketServer) -> Server {
    let mut app = App::new();
    app.route("/ws", ws);
    serve(app).await
}

/// What the callbacks of a server saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Connect(u64),
    Text(u64, String),
    Binary(u64, usize),
    Error(u64, String),
    Close(u64, u16, String),
}

/// Records every callback of `ws` (replacing its callbacks).
pub fn record(ws: &WebSocketServer) -> mpsc::UnboundedReceiver<Ev> {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = tx.clone();
    ws.on_connect(move |c| drop(t.send(Ev::Connect(c.id().get()))));
    let t = tx.clone();
    ws.on_message(move |c, m| drop(t.send(Ev::Text(c.id().get(), m.to_string()))));
    let t = tx.clone();
    ws.on_binary(move |c, b| drop(t.send(Ev::Binary(c.id().get(), b.len()))));
    let t = tx.clone();
    ws.on_error(move |c, e| drop(t.send(Ev::Error(c.id().get(), e.to_string()))));
    ws.on_close(move |c, code, reason| drop(tx.send(Ev::Close(c.id().get(), code.0, reason.into()))));
    rx
}

pub async fn next_ev(rx: &mut mpsc::UnboundedReceiver<Ev>) -> Ev {
    within(rx.recv()).await.expect("recorder closed")
}

// ----- tokio-tungstenite peers -----

pub type Peer = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn peer(url: &str) -> Peer {
    within(tokio_tungstenite::connect_async(url)).await.unwrap().0
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

pub async fn next_text(peer: &mut Peer) -> String {
    match next_msg(peer).await {
        TMessage::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

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

// ----- raw TCP peers (for what no well-behaved library does) -----

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends `head` and returns the response head (and anything after it).
pub async fn raw_request(addr: SocketAddr, head: &str) -> (TcpStream, String) {
    let mut tcp = within(TcpStream::connect(addr)).await.unwrap();
    within(tcp.write_all(head.as_bytes())).await.unwrap();
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = within(tcp.read(&mut chunk)).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    (tcp, String::from_utf8_lossy(&buf).into_owned())
}

pub fn upgrade_head(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A raw client after a successful upgrade, and any bytes read past the head.
pub async fn raw_ws(addr: SocketAddr, path: &str) -> TcpStream {
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

/// Reads until EOF (or a reset); returns everything read.
pub async fn read_to_end(tcp: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = within(tcp.read_to_end(&mut all)).await;
    all
}
