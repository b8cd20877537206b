//! [`WebSocket<S>`]: a `Stream` of received messages and a `Sink` of
//! messages to send, over any tokio `AsyncRead + AsyncWrite` (a `TcpStream`,
//! a TLS stream, an upgraded hyper connection).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use crest_driver::{ClientRequest, CloseCode, CloseFrame, Config, Error, Message, Result, Role, StreamCore};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::driver::{poll_write, Timer};

/// A WebSocket connection as a `Stream<Item = Result<Message>>` and a
/// `Sink<Message>`.
///
/// Pings are answered automatically (and also yielded as
/// `Message::Ping`); the stream ends after the closing handshake
/// ([`close_frame`](Self::close_frame) tells how); a protocol violation
/// yields one `Err` (the right Close frame was already sent), then ends.
/// `SinkExt::close` performs the closing handshake with 1000.
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
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    core: StreamCore,
    timer: Timer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Performs a client's opening handshake over `io`.
    ///
    /// # Errors
    /// The transport failed, or the server refused or botched the handshake.
    pub async fn client(io: S, request: ClientRequest, config: Config) -> Result<Self> {
        Self::handshake(io, StreamCore::client(request, config, Instant::now())?).await
    }

    /// Performs a server's opening handshake over `io`, accepting any
    /// WebSocket upgrade (any path, no subprotocol); a plain HTTP request
    /// gets 426 and an error. For routing, authentication and callbacks use
    /// [`App`](crate::App).
    ///
    /// # Errors
    /// The transport failed or the request was not a valid upgrade.
    pub async fn accept(io: S, config: Config) -> Result<Self> {
        Self::handshake(io, StreamCore::server(config, Instant::now())).await
    }

    /// Wraps a stream whose opening handshake already happened elsewhere.
    pub fn from_upgraded(io: S, role: Role, config: Config) -> Self {
        Self { io, core: StreamCore::open(role, config, Instant::now()), timer: Timer::default() }
    }

    async fn handshake(io: S, core: StreamCore) -> Result<Self> {
        let mut ws = Self { io, core, timer: Timer::default() };
        poll_fn(|cx| loop {
            if let Some(done) = ws.core.handshake() {
                // Flush the 101 (or the error response) before going on.
                if let Err(e) = ready!(poll_write(&mut ws.io, ws.core.wire(), cx)) {
                    return Poll::Ready(Err(Error::Io(e)));
                }
                return Poll::Ready(done);
            }
            if !ws.poll_io(cx) {
                return Poll::Pending;
            }
        })
        .await?;
        Ok(ws)
    }

    /// The negotiated subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.core.protocol()
    }

    /// How the connection ended, once it did: the peer's close code and
    /// reason, the code we failed it with, or 1006.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.core.close_frame()
    }

    /// Starts the closing handshake with `code` and `reason`; keep polling the
    /// stream (or `SinkExt::close`) to complete it.
    ///
    /// # Errors
    /// A code that may not be sent or a reason over 123 bytes.
    pub fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.core.close(code, reason)
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// One round of I/O: write, read, timers. Returns whether anything
    /// happened (otherwise every source is registered with `cx`).
    fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let core = &mut self.core;
        if let Poll::Ready(Err(e)) = poll_write(&mut self.io, core.wire(), cx) {
            core.io_error(e);
            return true;
        }
        if core.wire().wants_shutdown() {
            match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => core.wire().shutdown_sent(),
                Poll::Ready(Err(e)) => core.io_error(e),
                Poll::Pending => {}
            }
        }
        if core.wire().wants_read() {
            let buf = core.wire().read_buf();
            if let Poll::Ready(read) = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buf) {
                progress = true;
                match read {
                    Ok(0) => {
                        core.wire().receive_eof();
                    }
                    Ok(_) => core.wire().received(Instant::now()),
                    Err(e) => core.io_error(e),
                }
                core.step();
            }
        }
        if self.timer.poll(cx, core.wire().poll_timeout()) {
            core.wire().handle_timeout(Instant::now());
            core.step();
            progress = true;
        }
        progress || core.wire().is_finished()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.core.next_item() {
                Some(Some(item)) => return Poll::Ready(Some(item)),
                Some(None) => {
                    // Closed: write what is left (the Close echo) first.
                    let _ = ready!(poll_write(&mut this.io, this.core.wire(), cx));
                    return Poll::Ready(None);
                }
                None if this.poll_io(cx) => {}
                None => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.core.must_flush() {
            ready!(poll_write(&mut this.io, this.core.wire(), cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().core.send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(poll_write(&mut this.io, this.core.wire(), cx))?;
        Pin::new(&mut this.io).poll_flush(cx).map_err(Error::Io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.core.close(CloseCode::NORMAL, "")?;
        // Drive the closing handshake; messages still arriving are dropped.
        while !this.core.is_closed() && !this.core.wire().is_finished() {
            while let Some(Some(_)) = this.core.next_item() {}
            if !this.poll_io(cx) {
                return Poll::Pending;
            }
        }
        ready!(poll_write(&mut this.io, this.core.wire(), cx))?;
        Poll::Ready(Ok(()))
    }
}
