//! [`WebSocket<T>`]: the adapters' `WebSocket<S>` (`Stream<Item =
//! Result<Message>>` + `Sink<Message>` over any byte stream), generic over a
//! runtime's [`Transport`]; and [`StreamCore`], its decisions without I/O:
//! which event becomes which item, when the handshake is done, when the sink
//! must flush first.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;

use crest_proto::{Accept, ClientRequest, CloseCode, CloseFrame, Config, Connection, Event, Message, Role};

use crate::error::{Error, Result};
use crate::router::text;
use crate::timer::Deadline;
use crate::wire::{Wire, READ_PAUSE};

/// The protocol side of a message stream: a [`Wire`] plus what the stream
/// has yielded so far.
#[derive(Debug)]
pub struct StreamCore {
    wire: Wire,
    open: bool,
    /// Items ready for `poll_next`.
    items: VecDeque<Result<Message>>,
    /// How the connection ended, once it did.
    closed: Option<CloseFrame>,
}

impl StreamCore {
    /// Client: an opening handshake for `request`, ready to be written.
    ///
    /// # Errors
    /// [`Error::Send`] if the request's headers would break the HTTP head.
    pub fn client(request: ClientRequest, config: Config, now: Instant) -> Result<Self> {
        Ok(Self::new(Connection::client(request, config, now)?, now))
    }

    /// Server: waits for an upgrade request and accepts it (any path, no
    /// subprotocol); a plain HTTP request gets 426.
    pub fn server(config: Config, now: Instant) -> Self {
        Self::new(Connection::server(config, now), now)
    }

    /// A connection whose opening handshake happened elsewhere (an HTTP
    /// server that already answered 101).
    pub fn open(role: Role, config: Config, now: Instant) -> Self {
        Self::new(Connection::open(role, config, now), now)
    }

    fn new(conn: Connection, now: Instant) -> Self {
        let mut core = Self { wire: Wire::new(conn, now), open: false, items: VecDeque::new(), closed: None };
        core.step();
        core
    }

    /// The I/O half: buffers, timers, linger.
    pub fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }

    /// Call after every input (bytes, EOF, timeout): turns the connection's
    /// events into stream items.
    pub fn step(&mut self) {
        while let Some(event) = self.wire.conn_mut().poll_event() {
            match event {
                Event::Request(request) => {
                    let conn = self.wire.conn_mut();
                    if request.is_websocket() {
                        let _ = conn.accept(Accept::new());
                    } else {
                        let _ = conn.respond(text(426, "WebSocket only").header("Upgrade", "websocket"));
                    }
                }
                Event::Open => self.open = true,
                Event::Text(t) => self.items.push_back(Ok(Message::Text(t))),
                Event::Binary(b) => self.items.push_back(Ok(Message::Binary(b))),
                Event::Ping(p) => self.items.push_back(Ok(Message::Ping(p))),
                Event::Pong(p) => self.items.push_back(Ok(Message::Pong(p))),
                Event::Error(e) => {
                    if matches!(e, crest_proto::Error::Timeout(_)) {
                        self.wire.skip_linger();
                    }
                    self.items.push_back(Err(Error::Protocol(e)));
                }
                Event::Closed(frame) => self.closed = Some(frame),
            }
        }
        self.wire.update();
    }

    /// The transport failed: the stream yields the error, then ends.
    pub fn io_error(&mut self, err: std::io::Error) {
        if !self.wire.is_finished() {
            self.items.push_back(Err(Error::Io(err)));
            self.wire.receive_eof();
            self.wire.abort();
            self.step();
        }
    }

    /// Handshake progress: `None` while in progress, then `Some(Ok(()))`
    /// once open, or the error that ended it.
    pub fn handshake(&mut self) -> Option<Result<()>> {
        if self.open {
            return Some(Ok(()));
        }
        if let Some(Err(_)) = self.items.front() {
            return self.items.pop_front().map(|r| r.map(|_| ()));
        }
        if self.closed.is_some() || self.wire.is_finished() {
            return Some(Err(Error::Closed));
        }
        None
    }

    /// The next stream item: `Some(Some(item))`, `Some(None)` at the end of
    /// the stream (the connection closed: write what is left, then end),
    /// `None` when more input is needed.
    pub fn next_item(&mut self) -> Option<Option<Result<Message>>> {
        match self.items.pop_front() {
            Some(item) => Some(Some(item)),
            None if self.closed.is_some() || self.wire.is_finished() => Some(None),
            None => None,
        }
    }

    /// Whether the sink must flush before accepting another message.
    pub fn must_flush(&self) -> bool {
        self.wire.unsent() > READ_PAUSE
    }

    /// Queues a message (`Sink::start_send`).
    ///
    /// # Errors
    /// [`Error::Closed`] unless open; [`Error::Send`] for an invalid message.
    pub fn send(&mut self, message: Message) -> Result<()> {
        self.wire.conn_mut().send(message).map_err(|e| match e {
            crest_proto::SendError::NotOpen => Error::Closed,
            e => Error::Send(e),
        })
    }

    /// Starts the closing handshake if open (`Sink::poll_close`); a no-op
    /// otherwise.
    ///
    /// # Errors
    /// [`Error::Send`] for a code that may not be sent or a reason too long.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        if !self.wire.conn().is_open() {
            return Ok(());
        }
        let now = self.wire.now();
        self.wire.conn_mut().close(now, code, reason)?;
        Ok(())
    }

    /// Whether the closing handshake finished (or the connection failed).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// How the connection ended: the peer's code and reason, the code we
    /// failed it with, or 1006.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.closed.as_ref()
    }

    /// The negotiated subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.wire.conn().protocol()
    }
}

/// What a runtime provides to a [`WebSocket`]: byte I/O on its stream type.
/// Each adapter implements it once, for its `Socket<S>` wrapper of any
/// `AsyncRead + AsyncWrite` of its I/O traits. (Deadlines are not the
/// runtime's: every connection waits on crest-driver's [`Deadline`].)
pub trait Transport: Unpin {
    /// The byte stream inside (a `TcpStream`, a TLS stream, ...).
    type Io;

    /// Wraps `io`.
    fn new(io: Self::Io) -> Self;

    /// The byte stream inside.
    fn get_ref(&self) -> &Self::Io;

    /// Reads into `buf`'s spare capacity; `Ok(0)` is EOF.
    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;

    /// One write.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// One vectored write.
    fn poll_write_vectored(&mut self, cx: &mut Context<'_>, iov: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;

    /// What the drivers call: a plain write for one chunk (the usual reply;
    /// Linux's `write` takes a single buffer in fewer steps than a
    /// one-element `writev`), else one vectored write.
    fn poll_write_chunks(&mut self, cx: &mut Context<'_>, iov: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match iov {
            [one] => self.poll_write(cx, one),
            _ => self.poll_write_vectored(cx, iov),
        }
    }

    /// Flushes the stream.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Shuts down the write side (or what the stream offers for that).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A WebSocket connection as a `Stream<Item = Result<Message>>` and a
/// `Sink<Message>` over a runtime's [`Transport`]: the adapters' `WebSocket<S>`
/// is this over their `Socket<S>`.
///
/// Pings are answered automatically (and also yielded as
/// `Message::Ping`); the stream ends after the closing handshake
/// ([`close_frame`](Self::close_frame) tells how); a protocol violation
/// yields one `Err` (the right Close frame was already sent), then ends.
/// `SinkExt::close` performs the closing handshake with 1000.
#[derive(Debug)]
pub struct WebSocket<T> {
    io: T,
    timer: Deadline,
    core: StreamCore,
}

impl<T: Transport> WebSocket<T> {
    /// Performs a client's opening handshake over `io`.
    ///
    /// # Errors
    /// The transport failed, or the server refused or botched the handshake.
    pub async fn client(io: T::Io, request: ClientRequest, config: Config) -> Result<Self> {
        Self::handshake(io, StreamCore::client(request, config, Instant::now())?).await
    }

    /// Performs a server's opening handshake over `io`, accepting any
    /// WebSocket upgrade (any path, no subprotocol); a plain HTTP request
    /// gets 426 and an error. For routing, authentication and callbacks use
    /// the adapter's `App`.
    ///
    /// # Errors
    /// The transport failed or the request was not a valid upgrade.
    pub async fn accept(io: T::Io, config: Config) -> Result<Self> {
        Self::handshake(io, StreamCore::server(config, Instant::now())).await
    }

    /// Wraps a stream whose opening handshake already happened elsewhere.
    pub fn from_upgraded(io: T::Io, role: Role, config: Config) -> Self {
        Self { io: T::new(io), timer: Deadline::default(), core: StreamCore::open(role, config, Instant::now()) }
    }

    async fn handshake(io: T::Io, core: StreamCore) -> Result<Self> {
        let mut ws = Self { io: T::new(io), timer: Deadline::default(), core };
        poll_fn(|cx| loop {
            if let Some(done) = ws.core.handshake() {
                // Flush the 101 (or the error response) before going on.
                if let Err(e) = ready!(ws.poll_write(cx)) {
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
    pub fn get_ref(&self) -> &T::Io {
        self.io.get_ref()
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &mut self.io;
        crate::wire::poll_write_with(self.core.wire(), |iov| io.poll_write_chunks(cx, iov))
    }

    /// One round of I/O: write, read, timers. Returns whether anything
    /// happened (otherwise every source is registered with `cx`).
    fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        if let Poll::Ready(Err(e)) = self.poll_write(cx) {
            self.core.io_error(e);
            return true;
        }
        let core = &mut self.core;
        if core.wire().wants_shutdown() {
            match self.io.poll_shutdown(cx) {
                Poll::Ready(Ok(())) => core.wire().shutdown_sent(),
                Poll::Ready(Err(e)) => core.io_error(e),
                Poll::Pending => {}
            }
        }
        if core.wire().wants_read() {
            if let Poll::Ready(read) = self.io.poll_read_buf(cx, core.wire().read_buf()) {
                progress = true;
                match read {
                    Ok(0) => {
                        core.wire().receive_eof();
                    }
                    Ok(_) => core.wire().received(Instant::now()),
                    Err(e) => core.io_error(e),
                }
                core.step();
            } else {
                core.wire().read_blocked();
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

impl<T: Transport> Stream for WebSocket<T> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.core.next_item() {
                Some(Some(item)) => return Poll::Ready(Some(item)),
                Some(None) => {
                    // Closed: write what is left (the Close echo) first.
                    let _ = ready!(this.poll_write(cx));
                    return Poll::Ready(None);
                }
                None if this.poll_io(cx) => {}
                None => return Poll::Pending,
            }
        }
    }
}

impl<T: Transport> Sink<Message> for WebSocket<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.core.must_flush() {
            ready!(this.poll_write(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().core.send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write(cx))?;
        this.io.poll_flush(cx).map_err(Error::Io)
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
        ready!(this.poll_write(cx))?;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Transmit;

    /// Moves everything one side wants to write to the other side.
    fn pump(from: &mut StreamCore, to: &mut StreamCore, now: Instant) {
        while from.wire().wants_write() {
            let mut iov = [std::io::IoSlice::new(&[]); 8];
            let n = from.wire().io_slices(&mut iov);
            let mut bytes = Vec::new();
            for s in &iov[..n] {
                bytes.extend_from_slice(s);
            }
            from.wire().transmitted(bytes.len());
            to.wire().read_buf().extend_from_slice(&bytes);
            to.wire().received(now);
            to.step();
        }
    }

    #[test]
    fn client_and_server_cores_talk() {
        let now = Instant::now();
        let mut client = StreamCore::client(ClientRequest::new("localhost", "/x"), Config::default(), now).unwrap();
        let mut server = StreamCore::server(Config::default(), now);
        pump(&mut client, &mut server, now);
        assert!(matches!(server.handshake(), Some(Ok(()))));
        pump(&mut server, &mut client, now);
        assert!(matches!(client.handshake(), Some(Ok(()))));
        client.send(Message::text("hi")).unwrap();
        pump(&mut client, &mut server, now);
        assert!(matches!(server.next_item(), Some(Some(Ok(Message::Text(t)))) if t == "hi"));
        assert!(server.next_item().is_none());
        client.close(CloseCode::NORMAL, "bye").unwrap();
        pump(&mut client, &mut server, now);
        assert_eq!(server.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
        pump(&mut server, &mut client, now);
        assert!(client.is_closed());
    }
}
