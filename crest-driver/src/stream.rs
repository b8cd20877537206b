//! [`StreamCore`]: the decisions behind the adapters' `WebSocket<S>`
//! (`Stream<Item = Result<Message>>` + `Sink<Message>` over any byte stream),
//! without I/O: which event becomes which item, when the handshake is done,
//! when the sink must flush first.

use std::collections::VecDeque;
use std::time::Instant;

use crest_proto::{Accept, ClientRequest, CloseCode, CloseFrame, Config, Connection, Event, Message, Role};

use crate::error::{Error, Result};
use crate::router::text;
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
