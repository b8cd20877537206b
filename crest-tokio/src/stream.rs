//! [`WebSocket<S>`]: a `Stream` of received messages and a `Sink` of
//! messages to send, over any tokio `AsyncRead + AsyncWrite` (a `TcpStream`,
//! a TLS stream, an upgraded hyper connection). The stream itself is
//! crest-driver's; this is its tokio [`Transport`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use crest_driver::Transport;
use tokio::io::{AsyncRead, AsyncWrite};

/// A WebSocket connection as a `Stream<Item = Result<Message>>` and a
/// `Sink<Message>`.
///
/// Pings are answered automatically (and also yielded as
/// `Message::Ping`); the stream ends after the closing handshake
/// ([`close_frame`](crest_driver::WebSocket::close_frame) tells how); a
/// protocol violation yields one `Err` (the right Close frame was already
/// sent), then ends. `SinkExt::close` performs the closing handshake with
/// 1000.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use crest_tokio::{ClientRequest, Config, WebSocket};
///
/// # async fn demo() -> crest_tokio::Result<()> {
/// // Any AsyncRead + AsyncWrite works: put a TLS stream here for wss://.
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:9001").await?;
/// let mut ws = WebSocket::client(tcp, ClientRequest::new("127.0.0.1:9001", "/"), Config::default()).await?;
/// while let Some(message) = ws.next().await {
///     let message = message?;
///     if matches!(message, crest_tokio::Message::Text(_) | crest_tokio::Message::Binary(_)) {
///         ws.send(message).await?; // echo
///     }
/// }
/// # Ok(()) }
/// ```
pub type WebSocket<S> = crest_driver::WebSocket<Socket<S>>;

/// A tokio `AsyncRead + AsyncWrite`: the [`Transport`] of
/// [`WebSocket<S>`]. (Its deadlines run on crest-driver's timer thread, so
/// the runtime needs no time driver.)
#[derive(Debug)]
pub struct Socket<S> {
    io: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for Socket<S> {
    type Io = S;

    fn new(io: S) -> Self {
        Self { io }
    }

    fn get_ref(&self) -> &S {
        &self.io
    }

    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(&mut self, cx: &mut Context<'_>, iov: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, iov)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
