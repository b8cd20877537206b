//! [`WebSocket<S>`]: a `Stream` of received messages and a `Sink` of
//! messages to send, over any futures-io `AsyncRead + AsyncWrite` (an
//! async-std or smol `TcpStream`, an `Async<TcpStream>`, a TLS stream). The
//! stream itself is crest-driver's; this is its futures-io [`Transport`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use crest_driver::Transport;
use futures_io::{AsyncRead, AsyncWrite};

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
/// After the closing handshake the write side is shut down with futures-io's
/// `poll_close`. For async-io's `Async<TcpStream>` and async-std's
/// `TcpStream` that only flushes (no FIN): the connection then waits, at
/// most 2 seconds, for the peer to close the TCP connection, which clients
/// do on their own (RFC 6455 §7.1.1); dropping the `WebSocket` closes it at
/// once.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use crest_async_std::{ClientRequest, Config, WebSocket};
///
/// # async fn demo() -> crest_async_std::Result<()> {
/// // Any AsyncRead + AsyncWrite works: put a TLS stream here for wss://.
/// let tcp = async_std::net::TcpStream::connect("127.0.0.1:9001").await?;
/// let mut ws = WebSocket::client(tcp, ClientRequest::new("127.0.0.1:9001", "/"), Config::default()).await?;
/// while let Some(message) = ws.next().await {
///     let message = message?;
///     if matches!(message, crest_async_std::Message::Text(_) | crest_async_std::Message::Binary(_)) {
///         ws.send(message).await?; // echo
///     }
/// }
/// # Ok(()) }
/// ```
pub type WebSocket<S> = crest_driver::WebSocket<Socket<S>>;

/// A futures-io `AsyncRead + AsyncWrite`: the [`Transport`] of
/// [`WebSocket<S>`]. (Its deadlines run on crest-driver's timer thread.)
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

    /// futures-io's `poll_read` takes an initialised slice, so the spare
    /// capacity is zeroed first (it cannot lend uninitialised memory to an
    /// arbitrary stream); what was not read is truncated away again. At most
    /// [`READ_MAX`](crest_driver::wire::READ_MAX) bytes are lent: the buffer
    /// for the rest of a large frame has room for all of it, and zeroing that
    /// on every read would cost more than the read.
    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let len = buf.len();
        let room = (buf.capacity() - len).min(crest_driver::wire::READ_MAX);
        buf.resize(len + room, 0);
        let result = Pin::new(&mut self.io).poll_read(cx, &mut buf[len..]);
        let n = match &result {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        buf.truncate(len + n);
        result
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

    /// futures-io's `close` is the write-side shutdown.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}
