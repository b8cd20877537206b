//! [`Connection`]: the public entry point. Thin: the opening handshake lives
//! in `handshake`, frame parsing in `frame` and `recv`, output in `tx`,
//! states in `state`; this file wires them to the four kinds of methods.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
use crate::config::Config;
use crate::error::{Error, HandshakeError, SendError, TimeoutKind};
use crate::event::Event;
use crate::extension::Extension;
use crate::frame::{mask, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::handshake::{client, find_head_end, server, validate_headers, Accept, ClientRequest, Response};
use crate::message::{for_each_frame, EncodedMessage, Message};
use crate::payload::{Payload, INLINE_CAPACITY};
use crate::recv::{Context, Receiver, Stop};
use crate::state::{Role, State};
use crate::timer::{Rng, Timer, Timers};
use crate::tx::TxQueue;

/// Payloads up to this size are copied next to their header (one buffer, one
/// write for many small frames); larger ones are queued as their own `Bytes`.
pub(crate) const COPY_THRESHOLD: usize = 1024;

/// Where the opening handshake stands.
#[derive(Debug)]
enum Handshake {
    /// Server: reading the request head; `scanned` bytes hold no blank line.
    Request { scanned: usize },
    /// Server: request reported, waiting for `accept` or `respond`.
    Decision(server::Pending),
    /// Client: request sent, reading the response head.
    Response { accept: String, protocols: Vec<String>, scanned: usize },
}

/// One WebSocket connection, either side, from the first byte of the opening
/// handshake to the end of the closing handshake. Does no I/O.
///
/// Its methods come in four kinds:
///
/// - **getters**: [`state`](Self::state), [`role`](Self::role),
///   [`is_open`](Self::is_open), [`is_closed`](Self::is_closed),
///   [`is_finished`](Self::is_finished), [`protocol`](Self::protocol), ...
/// - **inputs**: [`receive`](Self::receive) / [`receive_bytes`](Self::receive_bytes) /
///   [`receive_appended`](Self::receive_appended) (bytes from the transport;
///   the last after reading into [`input_buffer`](Self::input_buffer)),
///   [`receive_eof`](Self::receive_eof),
///   [`handle_timeout`](Self::handle_timeout).
/// - **commands**: [`accept`](Self::accept), [`respond`](Self::respond),
///   [`send`](Self::send), [`send_encoded`](Self::send_encoded),
///   [`ping`](Self::ping), [`close`](Self::close).
/// - **outputs**: [`poll_transmit`](Self::poll_transmit) /
///   [`poll_transmit_bytes`](Self::poll_transmit_bytes) (bytes to write),
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout`),
///   [`poll_event`](Self::poll_event) (what happened).
///
/// After any input or command: write what `poll_transmit` gives, re-arm your
/// timer from `poll_timeout`, drain `poll_event`. Drop the transport once
/// [`is_finished`](Self::is_finished) and everything taken has been written.
///
/// No input can make it panic; a peer's violation becomes
/// [`Event::Error`] (with the right Close frame or HTTP error already
/// queued) followed by [`Event::Closed`], after which input is ignored.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    state: State,
    /// Shared: many connections of one endpoint use the same configuration.
    config: Arc<Config>,
    recv: Receiver,
    events: VecDeque<Event>,
    tx: TxQueue,
    timers: Timers,
    rng: Rng,
    handshake: Option<Box<Handshake>>,
    extension: Option<Box<dyn Extension>>,
    protocol: Option<Box<str>>,
    response_headers: Vec<(String, Bytes)>,
    /// The latest time any input told us; used by commands that arm timers
    /// but take no `now` themselves (`accept`).
    last_now: Instant,
    /// When bytes last arrived (the idle timeout runs from here).
    last_rx: Instant,
    /// Client after a clean closing handshake: waiting for the server to
    /// close TCP first (RFC 6455 §7.1.1), until EOF or the close timer.
    await_eof: bool,
    /// The connection has ended (`Event::Closed` is queued) but the caller
    /// has not reached that point of the event stream yet; see [`Ending`].
    ending: Option<Ending>,
}

/// How a connection ends, applied when the caller takes its `Error` or
/// `Closed` event from `poll_event`.
///
/// Why not at once: a read may hold a valid message followed by a violation
/// or a Close. The caller sees the message first and may answer it (an echo
/// server does); that answer must go out *before* our Close frame, and
/// sending it must not fail. So the state stays as it was until the caller
/// reaches the end in the event stream; input is ignored from the moment
/// the end is known.
#[derive(Debug, Clone, Copy)]
struct Ending {
    /// Queue a Close frame (with this code, or an empty body) if still open.
    send_close: Option<Option<CloseCode>>,
    /// A completed closing handshake (a client then waits for TCP close).
    clean: bool,
}

impl Connection {
    /// A server connection waiting for the client's HTTP request.
    ///
    /// Takes a `Config` or an `Arc<Config>`: a server passes one shared
    /// `Arc` to all its connections, so each holds a pointer rather than a
    /// copy (an idle connection's size matters at 10,000 connections).
    pub fn server(config: impl Into<Arc<Config>>, now: Instant) -> Self {
        let mut conn = Self::new(Role::Server, State::Connecting, config.into(), now);
        conn.handshake = Some(Box::new(Handshake::Request { scanned: 0 }));
        conn.timers.set(Timer::Handshake, conn.config.handshake_timeout.map(|d| now + d));
        conn
    }

    /// A client connection; its HTTP request is queued for `poll_transmit`.
    ///
    /// # Errors
    /// [`SendError::InvalidHeader`] if the request's target or headers hold
    /// characters that would break the HTTP head.
    pub fn client(request: ClientRequest, config: impl Into<Arc<Config>>, now: Instant) -> Result<Self, SendError> {
        request.validate()?;
        let mut conn = Self::new(Role::Client, State::Connecting, config.into(), now);
        let nonce = request.key.unwrap_or_else(|| conn.rng.nonce());
        let key = client::encode_key(nonce);
        let offers: Vec<_> = conn.config.extensions.iter().map(|e| e.offer()).collect();
        request.encode(&key, &offers, conn.tx.tail(512));
        let accept = crate::handshake::accept_key(key.as_bytes());
        conn.handshake = Some(Box::new(Handshake::Response { accept, protocols: request.protocols, scanned: 0 }));
        conn.timers.set(Timer::Handshake, conn.config.handshake_timeout.map(|d| now + d));
        Ok(conn)
    }

    /// A connection whose opening handshake happened elsewhere (for example
    /// an HTTP server that already answered 101). Reports [`Event::Open`]
    /// first. No extension is active.
    pub fn open(role: Role, config: impl Into<Arc<Config>>, now: Instant) -> Self {
        let mut conn = Self::new(role, State::Connecting, config.into(), now);
        conn.set_open();
        conn
    }

    fn new(role: Role, state: State, config: Arc<Config>, now: Instant) -> Self {
        Self {
            role,
            state,
            rng: Rng::new(config.rng_seed),
            config,
            recv: Receiver::default(),
            events: VecDeque::new(),
            tx: TxQueue::default(),
            timers: Timers::default(),
            handshake: None,
            extension: None,
            protocol: None,
            response_headers: Vec::new(),
            last_now: now,
            last_rx: now,
            await_eof: false,
            ending: None,
        }
    }

    // ----- getters -----

    /// Which side we are.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether messages may be sent ([`State::Open`]).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the connection is [`State::Closed`]: no more messages either way.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the transport should now be closed: the connection is closed,
    /// all output has been taken, and, for a client after a clean closing
    /// handshake, the server closed TCP first or the close timer expired.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.tx.is_empty() && !self.await_eof
    }

    /// The negotiated subprotocol, once open.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Client: the first response header called `name` (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes queued for sending that `poll_transmit` has not taken yet.
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// Received bytes the connection holds: input not yet processed (an
    /// incomplete HTTP head or frame) plus a fragmented message being
    /// reassembled. The fuzz targets check it against the limits in
    /// [`Config`]; not part of the stable API.
    #[doc(hidden)]
    pub fn buffered_len(&self) -> usize {
        self.recv.held()
    }

    /// Bytes still missing from the frame whose header was decoded (after
    /// [`poll_event`](Self::poll_event) returned `None`); 0 when there is
    /// none (no frame started, only part of a header held, or the
    /// connection takes no more input). At most the limits in [`Config`].
    /// See [`input_buffer`](Self::input_buffer).
    #[inline]
    pub fn frame_remaining(&self) -> usize {
        match self.recv.frame_remaining() {
            n if n > 0 && self.accepts_input() => n,
            _ => 0,
        }
    }

    // ----- inputs -----

    /// Bytes from the transport. Never fails: problems become events.
    ///
    /// Any split of the input into calls yields the same events.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        if self.accepts_input() && !data.is_empty() {
            self.recv.buf.extend_from_slice(data);
            self.process(now);
        }
    }

    /// Like [`receive`](Self::receive), taking ownership of a buffer. When the
    /// connection holds no partial frame, or `data` directly follows the held
    /// bytes in memory (both split from one `BytesMut`), no byte is copied:
    /// complete messages are handed out as slices of `data`.
    pub fn receive_bytes(&mut self, now: Instant, data: BytesMut) {
        if self.accepts_input() && !data.is_empty() {
            if self.recv.buf.is_empty() {
                self.recv.buf = data;
            } else {
                self.recv.buf.unsplit(data);
            }
            self.process(now);
        }
    }

    /// The connection's own input buffer, for reading straight into it; then
    /// call [`receive_appended`](Self::receive_appended). Room is reserved,
    /// right after the bytes already held, for `min(reserve,
    /// frame_remaining())` more bytes: pass the number of bytes the read may
    /// bring (`usize::MAX` for "the rest of the frame").
    ///
    /// This is the zero-copy path for large frames. A read loop that reads
    /// into its own block and hands pieces over with
    /// [`receive_bytes`](Self::receive_bytes) copies a frame that spans
    /// several blocks when it joins them; reading the rest of such a frame
    /// here instead puts the whole frame in one buffer (the held start of it
    /// is copied at most once, when the buffer lacks room), and its payload
    /// is handed out as a slice of that buffer. Use it while
    /// [`frame_remaining`](Self::frame_remaining) is larger than the room
    /// left in your own block.
    ///
    /// Memory: the reservation is bounded by the frame's declared length,
    /// which was checked against [`Config::max_frame_size`] and
    /// [`Config::max_message_size`] when its header was decoded (a header
    /// over the limits closes the connection with 1009 and reserves
    /// nothing); with no frame decoded, nothing is reserved. Reserved
    /// capacity is not written until bytes arrive.
    ///
    /// Appending more than was reserved works (the buffer grows), and any
    /// split of the input, through any of the `receive*` methods, yields the
    /// same events.
    pub fn input_buffer(&mut self, reserve: usize) -> &mut BytesMut {
        if self.accepts_input() {
            self.recv.reserve_frame(reserve);
        }
        &mut self.recv.buf
    }

    /// `n` bytes were appended to [`input_buffer`](Self::input_buffer):
    /// process them, as [`receive`](Self::receive) would. When the
    /// connection no longer takes input they are dropped again.
    pub fn receive_appended(&mut self, now: Instant, n: usize) {
        let n = n.min(self.recv.buf.len());
        if n == 0 {
            return;
        }
        if self.accepts_input() {
            self.process(now);
        } else {
            self.recv.buf.truncate(self.recv.buf.len() - n);
        }
    }

    /// The transport reached end of stream. Without a closing handshake this
    /// is an abnormal closure: [`Event::Closed`] with 1006.
    pub fn receive_eof(&mut self) {
        self.await_eof = false;
        if self.ending.is_some() {
            return;
        }
        match self.state {
            State::Closed => self.timers.clear(),
            State::Connecting => {
                if self.role == Role::Client {
                    self.events.push_back(Event::Error(HandshakeError::Eof.into()));
                }
                self.end(CloseFrame::abnormal(), None, false);
            }
            State::Open | State::LocalClosing => self.end(CloseFrame::abnormal(), None, false),
        }
    }

    /// The time `poll_timeout` named has come (or passed).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if self.ending.is_some() {
            return;
        }
        match self.state {
            State::Closed => {
                if self.timers.expire(Timer::Close, now) {
                    self.await_eof = false;
                }
            }
            State::Connecting => {
                if self.timers.expire(Timer::Handshake, now) {
                    self.fail(Error::Timeout(TimeoutKind::Handshake));
                }
            }
            State::Open | State::LocalClosing => {
                if self.state == State::LocalClosing && self.timers.expire(Timer::Close, now) {
                    return self.fail(Error::Timeout(TimeoutKind::Close));
                }
                if self.idle_deadline().is_some_and(|at| at <= now) {
                    return self.fail(Error::Timeout(TimeoutKind::Idle));
                }
                if self.state == State::Open && self.timers.expire(Timer::Ping, now) {
                    self.queue_frame(control_header(OpCode::Ping, 0), Payload::new());
                    self.timers.set(Timer::Ping, self.config.ping_interval.map(|d| now + d));
                }
            }
        }
    }

    // ----- commands -----

    /// Server: accept the pending WebSocket request; queues the 101 response
    /// (with the first acceptable extension offer, if `Config::extensions`
    /// has one) and reports [`Event::Open`]. Frames that arrived after the
    /// request head follow as events.
    ///
    /// # Errors
    /// No pending request, a plain HTTP request, a subprotocol the client did
    /// not offer, or a header that would break the response head.
    pub fn accept(&mut self, accept: Accept) -> Result<(), SendError> {
        let Some(Handshake::Decision(pending)) = self.handshake.as_deref() else {
            return Err(SendError::NoPendingRequest);
        };
        if !pending.websocket {
            return Err(SendError::NotWebSocket);
        }
        if let Some(p) = &accept.protocol {
            if !pending.protocols.contains(p) {
                return Err(SendError::ProtocolNotOffered(p.clone()));
            }
        }
        validate_headers(&accept.headers)?;
        let mut answer = None;
        'offers: for offer in &pending.extensions {
            for cfg in self.config.extensions.iter().filter(|c| c.name().eq_ignore_ascii_case(&offer.name)) {
                if let Some((response, ext)) = cfg.accept(offer) {
                    answer = Some(response.to_string());
                    self.extension = Some(ext);
                    break 'offers;
                }
            }
        }
        let key = pending.key.clone();
        server::write_switching_protocols(
            self.tx.tail(256),
            &key,
            accept.protocol.as_deref(),
            answer.as_deref(),
            &accept.headers,
        );
        self.protocol = accept.protocol.map(Into::into);
        self.handshake = None;
        self.set_open();
        Ok(())
    }

    /// Server: replaces the configuration while a request waits for a
    /// decision, so that a router can apply the limits and timers of the
    /// endpoint it chose (frame and message sizes, heartbeat, extensions)
    /// before calling [`accept`](Self::accept). The handshake deadline
    /// already armed is kept.
    ///
    /// # Errors
    /// [`SendError::NoPendingRequest`] unless a request is waiting for `accept`
    /// or `respond`; the configuration is then unchanged.
    pub fn set_config(&mut self, config: impl Into<Arc<Config>>) -> Result<(), SendError> {
        if !matches!(self.handshake.as_deref(), Some(Handshake::Decision(_))) {
            return Err(SendError::NoPendingRequest);
        }
        self.config = config.into();
        Ok(())
    }

    /// Server: answer the pending request with an HTTP response and close:
    /// reject an upgrade (401, 403, 404, ...) or serve a plain request.
    ///
    /// # Errors
    /// No pending request, or a status or header that would break the head.
    pub fn respond(&mut self, response: Response) -> Result<(), SendError> {
        if !matches!(self.handshake.as_deref(), Some(Handshake::Decision(_))) {
            return Err(SendError::NoPendingRequest);
        }
        response.validate()?;
        response.encode(self.tx.tail(128 + response.body.len()));
        self.end(CloseFrame::abnormal(), None, false);
        Ok(())
    }

    /// Queues a message, after everything queued before it. Text and binary
    /// messages longer than `Config::max_send_frame_size` are fragmented.
    ///
    /// # Errors
    /// [`SendError::NotOpen`] unless [`State::Open`]; a control payload over
    /// 125 bytes. Nothing is queued on error.
    #[inline]
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::NotOpen);
        }
        let (opcode, payload) = message.into_parts();
        if let Some((data, len)) = payload.inline_parts() {
            if self.extension.is_none() && self.config.max_send_frame_size >= INLINE_CAPACITY {
                // A short message without extension: one frame, nothing to split.
                self.queue_short(0x80 | opcode.as_u8(), data, len);
                return Ok(());
            }
        }
        self.send_frames(opcode, payload)
    }

    /// Everything [`send`](Self::send)'s fast path does not handle, out of
    /// line so that the fast path stays small: control size checks, the
    /// extension, fragmentation.
    #[inline(never)]
    fn send_frames(&mut self, opcode: OpCode, payload: Payload) -> Result<(), SendError> {
        if opcode.is_control() {
            if payload.len() > MAX_CONTROL_PAYLOAD {
                return Err(SendError::ControlFrameTooLarge(payload.len()));
            }
            self.queue_frame(control_header(opcode, payload.len()), payload);
            return Ok(());
        }
        let (rsv, payload) = match self.extension.as_mut() {
            Some(ext) => {
                let (rsv, encoded) = ext.encode(payload.into_bytes());
                (rsv, Payload::from(encoded))
            }
            None => (0, payload),
        };
        let mut first_rsv = rsv;
        for_each_frame(opcode, payload, self.config.max_send_frame_size, |mut header, chunk| {
            header.rsv = std::mem::take(&mut first_rsv);
            self.queue_frame(header, chunk);
        });
        Ok(())
    }

    /// Server: queues a message encoded once for many connections (a
    /// broadcast), sharing its bytes instead of encoding or copying them.
    /// With an extension negotiated, the message is encoded by it: once for
    /// all connections sharing a stateless encoding (deflate without server
    /// context takeover), else by this connection alone (see [`EncodedMessage`]).
    ///
    /// # Errors
    /// [`SendError::NotOpen`] unless open; [`SendError::EncodedOnClient`] on
    /// a client, whose frames must be masked.
    pub fn send_encoded(&mut self, message: &EncodedMessage) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::EncodedOnClient);
        }
        if self.state != State::Open {
            return Err(SendError::NotOpen);
        }
        let shared;
        let frames = match (self.extension.as_mut(), message.message()) {
            (Some(ext), Message::Text(_) | Message::Binary(_)) => match ext.shared_encoding() {
                Some(key) => {
                    shared = message.shared(key, |payload| ext.encode(payload));
                    &*shared
                }
                // The encoding depends on this connection's state.
                None => return self.send(message.message().clone()),
            },
            _ => message.plain(),
        };
        for part in &frames.parts {
            self.tx.push_chunk(part.clone());
        }
        Ok(())
    }

    /// Queues a Ping.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn ping(&mut self, payload: impl Into<Payload>) -> Result<(), SendError> {
        self.send(Message::Ping(payload.into()))
    }

    /// Starts the closing handshake: queues a Close frame after everything
    /// already queued (nothing queued is dropped) and waits up to
    /// `Config::close_timeout` from `now` for the peer's Close.
    ///
    /// # Errors
    /// [`SendError::NotOpen`] unless open; a code that may not be sent
    /// (RFC 6455 §7.4: 1000-1003, 1007-1014, 3000-4999 may); a reason over 123 bytes.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::NotOpen);
        }
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::CloseReasonTooLong(reason.len()));
        }
        self.queue_close(Some(code), reason);
        self.state.transition(State::LocalClosing);
        self.timers.set(Timer::Ping, None);
        self.timers.set(Timer::Close, self.config.close_timeout.map(|d| now + d));
        Ok(())
    }

    // ----- outputs -----

    /// The next event, in order; `None` when there is nothing new.
    ///
    /// Frames are decoded here, on demand, one message at a time; the Pong
    /// for a Ping and the Close echo are queued as their events are handed out.
    #[must_use]
    #[inline(always)]
    pub fn poll_event(&mut self) -> Option<Event> {
        // Fast path: the next short data message straight from the buffer.
        if self.events.is_empty() && self.ending.is_none() && matches!(self.state, State::Open | State::LocalClosing) {
            let ctx = Context { role: self.role, config: &self.config, extension: None };
            match self.recv.next_short(&ctx) {
                Some(Ok(event)) => return Some(event),
                Some(Err(stop)) => return self.stop(stop),
                None if self.recv.release_if_drained() => return None,
                None => {}
            }
        }
        self.poll_event_slow()
    }

    /// Everything `poll_event`'s fast path does not handle, out of line so
    /// that the fast path stays small.
    #[inline(never)]
    fn poll_event_slow(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            if matches!(event, Event::Error(_) | Event::Closed(_)) {
                if let Some(ending) = self.ending.take() {
                    self.apply_ending(ending);
                }
            }
            return Some(event);
        }
        self.next_frame_event()
    }

    /// Appends all queued output (HTTP handshake, Pongs, Close echoes,
    /// messages, in order) to `out`. Call after every input and command.
    ///
    /// When `out` is empty, the queue's own buffer may take its place (the
    /// bytes are then not copied, and `out`'s old allocation is freed).
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        self.tx.drain_into(out);
    }

    /// Takes the next chunk of queued output, in order; `None` when empty.
    /// The zero-copy alternative to [`poll_transmit`](Self::poll_transmit):
    /// large payloads come back as the very `Bytes` that were sent, ready for
    /// a vectored write.
    #[must_use]
    pub fn poll_transmit_bytes(&mut self) -> Option<Bytes> {
        self.tx.pop()
    }

    /// Takes the next chunk of queued output, in order, like
    /// [`poll_transmit_bytes`](Self::poll_transmit_bytes), without an
    /// allocation per reply: coalesced small frames (up to 16 KiB) are copied
    /// into `buf` (its contents are discarded first) and split off it, and
    /// the connection keeps its coalescing buffer for the next frames. Keep
    /// `buf` across calls: once the `Bytes` split off it are dropped (after
    /// the write), its block is reused. Large payloads still come back as the
    /// very `Bytes` that were sent.
    ///
    /// The kept coalescing buffer is memory an idle connection holds: take it
    /// back with [`reclaim_transmit_buffer`](Self::reclaim_transmit_buffer)
    /// when the connection goes quiet.
    #[must_use]
    pub fn poll_transmit_bytes_in(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        self.tx.pop_into(buf)
    }

    /// Lends the queued output, in order, as up to `dst.len()` slices for
    /// one vectored write, without taking it; returns how many were filled.
    /// Then call [`advance_transmit`](Self::advance_transmit) with the number
    /// of bytes written. The cheapest way to drain the queue: nothing is
    /// copied, allocated or reference-counted, and large payloads are lent
    /// in place. As with
    /// [`poll_transmit_bytes_in`](Self::poll_transmit_bytes_in), the
    /// coalescing buffer keeps its capacity for the next frames (take it back
    /// with [`reclaim_transmit_buffer`](Self::reclaim_transmit_buffer) when
    /// the connection goes quiet).
    ///
    /// ```
    /// use std::io::IoSlice;
    /// use std::time::Instant;
    /// use crest_proto::{Connection, Message, Role};
    ///
    /// let mut conn = Connection::open(Role::Server, crest_proto::Config::default(), Instant::now());
    /// conn.send(Message::text("hi"))?;
    /// let mut iov = [IoSlice::new(&[]); 8];
    /// let n = conn.transmit_slices(&mut iov);
    /// let written: usize = iov[..n].iter().map(|s| s.len()).sum(); // a socket's writev would go here
    /// assert_eq!(&*iov[0], &[0x81, 2, b'h', b'i'][..]);
    /// conn.advance_transmit(written);
    /// assert_eq!(conn.pending_transmit(), 0);
    /// # Ok::<(), crest_proto::SendError>(())
    /// ```
    pub fn transmit_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.tx.slices(dst)
    }

    /// Drops the first `n` bytes of the queued output, after they were
    /// written from [`transmit_slices`](Self::transmit_slices).
    pub fn advance_transmit(&mut self, n: usize) {
        self.tx.advance(n.min(self.tx.len()));
    }

    /// Gives the connection `buf`'s capacity to encode small frames into
    /// (its contents are discarded), unless it already has such a buffer:
    /// then `buf` is given back. With
    /// [`reclaim_transmit_buffer`](Self::reclaim_transmit_buffer), a caller
    /// can keep these buffers in a pool shared by its connections.
    #[must_use]
    pub fn lend_transmit_buffer(&mut self, buf: Vec<u8>) -> Option<Vec<u8>> {
        self.tx.lend(buf)
    }

    /// Takes back the connection's coalescing buffer (empty, with its
    /// capacity) when it holds no output; `None` when there is none or it
    /// holds bytes not yet taken.
    #[must_use]
    pub fn reclaim_transmit_buffer(&mut self) -> Option<Vec<u8>> {
        self.tx.reclaim()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if
    /// any timer is armed. Ask again after every input and command.
    #[must_use]
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        crate::timer::earlier(self.timers.earliest(), self.idle_deadline())
    }

    // ----- internals -----

    fn accepts_input(&self) -> bool {
        self.state != State::Closed && self.ending.is_none()
    }

    #[inline]
    fn idle_deadline(&self) -> Option<Instant> {
        self.config.idle_timeout?;
        if self.ending.is_some() {
            return None;
        }
        match self.state {
            State::Open | State::LocalClosing => self.config.idle_timeout.map(|d| self.last_rx + d),
            _ => None,
        }
    }

    fn process(&mut self, now: Instant) {
        self.last_now = now;
        self.last_rx = now;
        if self.state == State::Connecting {
            self.process_handshake();
        }
    }

    fn process_handshake(&mut self) {
        let limit = self.config.max_handshake_size;
        let Some(handshake) = self.handshake.as_deref_mut() else {
            return;
        };
        let request = matches!(handshake, Handshake::Request { .. });
        let end = match handshake {
            Handshake::Request { scanned } | Handshake::Response { scanned, .. } => {
                let end = find_head_end(&self.recv.buf, *scanned);
                if request {
                    // Only the head (up to its end, if found) is judged.
                    let head = &self.recv.buf[..end.unwrap_or(self.recv.buf.len())];
                    if let Err(e) = server::check_request_start(head) {
                        return self.fail(e.into());
                    }
                }
                let Some(end) = end else {
                    *scanned = self.recv.buf.len();
                    if self.recv.buf.len() > limit {
                        self.fail(HandshakeError::HeadTooLarge { limit }.into());
                    }
                    return;
                };
                if end > limit {
                    return self.fail(HandshakeError::HeadTooLarge { limit }.into());
                }
                end
            }
            Handshake::Decision(_) => {
                // The client must wait for our 101 before sending frames.
                if self.recv.buf.len() > limit {
                    let n = self.recv.buf.len();
                    self.fail(crate::error::ProtocolError::EarlyData(n).into());
                }
                return;
            }
        };
        // The parser gets exactly the head found, never bytes after it: what
        // it sees, and so its verdict, cannot depend on how input was split.
        match self.handshake.take().map(|b| *b) {
            Some(Handshake::Request { .. }) => match server::parse_request(&self.recv.buf[..end], &self.config) {
                Ok((request, pending, len)) => {
                    let _ = self.recv.buf.split_to(len);
                    self.handshake = Some(Box::new(Handshake::Decision(pending)));
                    self.events.push_back(Event::Request(Box::new(request)));
                }
                Err(e) => self.fail(e.into()),
            },
            Some(Handshake::Response { accept, protocols, .. }) => {
                match client::parse_response(&self.recv.buf[..end], &self.config, &accept, &protocols) {
                    Ok(accepted) => {
                        let _ = self.recv.buf.split_to(accepted.len);
                        self.protocol = accepted.protocol.map(Into::into);
                        self.response_headers = accepted.headers;
                        self.extension = accepted.extension;
                        self.set_open();
                    }
                    Err(e) => self.fail(e.into()),
                }
            }
            other => self.handshake = other.map(Box::new),
        }
    }

    fn set_open(&mut self) {
        self.state.transition(State::Open);
        self.timers.set(Timer::Handshake, None);
        self.timers.set(Timer::Ping, self.config.ping_interval.map(|d| self.last_now + d));
        self.events.push_back(Event::Open);
    }

    /// Decodes received frames until one yields an event.
    #[inline]
    fn next_frame_event(&mut self) -> Option<Event> {
        if !matches!(self.state, State::Open | State::LocalClosing) || self.ending.is_some() {
            return None;
        }
        let ctx = Context { role: self.role, config: &self.config, extension: self.extension.as_mut() };
        match self.recv.next(ctx) {
            Ok(Some(event)) => {
                if let Event::Ping(payload) = &event {
                    if self.state == State::Open && self.config.auto_pong {
                        // RFC 6455 §5.5.2: answer with the same payload.
                        let payload = payload.clone();
                        self.queue_frame(control_header(OpCode::Pong, payload.len()), payload);
                    }
                }
                Some(event)
            }
            Ok(None) => {
                self.recv.release_if_empty();
                None
            }
            Err(stop) => self.stop(stop),
        }
    }

    /// Ends the connection as the receiver found it must, and reports it.
    #[cold]
    #[inline(never)]
    fn stop(&mut self, stop: Stop) -> Option<Event> {
        match stop {
            Stop::Error(e) => self.fail(e.into()),
            Stop::Close(frame) => {
                // Echo the peer's code (RFC 6455 §5.5.1); no code, empty body.
                let echo = (frame.code != CloseCode::NO_STATUS_RECEIVED).then_some(frame.code);
                self.end(*frame, Some(echo), true);
            }
        }
        self.poll_event()
    }

    /// Fails the connection: the right Close frame or HTTP error is queued,
    /// then `Error` and `Closed` are reported.
    fn fail(&mut self, err: Error) {
        let code = match &err {
            Error::Protocol(p) => Some(p.close_code()),
            Error::Timeout(TimeoutKind::Idle) => Some(CloseCode::GOING_AWAY),
            _ => None,
        };
        if self.ending.is_some() || self.state == State::Closed {
            return;
        }
        if let (Error::Handshake(h), Role::Server) = (&err, self.role) {
            let response = server::error_response(h);
            response.encode(self.tx.tail(256));
        }
        self.events.push_back(Event::Error(err));
        let frame = code.map_or_else(CloseFrame::abnormal, |c| CloseFrame::new(c, ""));
        self.end(frame, code.map(Some), false);
    }

    /// Reports the end of the connection, once; the state changes when the
    /// caller reaches it in the event stream (see [`Ending`]).
    fn end(&mut self, frame: CloseFrame, send_close: Option<Option<CloseCode>>, clean: bool) {
        if self.ending.is_some() || self.state == State::Closed {
            return;
        }
        self.events.push_back(Event::Closed(frame));
        self.ending = Some(Ending { send_close, clean });
        self.timers.clear();
        self.handshake = None;
        self.recv = Receiver::default();
    }

    fn apply_ending(&mut self, ending: Ending) {
        if let (Some(code), State::Open) = (ending.send_close, self.state) {
            self.queue_close(code, "");
        }
        self.state.transition(State::Closed);
        self.await_eof = ending.clean && self.role == Role::Client && self.config.close_timeout.is_some();
        if self.await_eof {
            self.timers.set(Timer::Close, self.config.close_timeout.map(|d| self.last_now + d));
        }
    }

    fn queue_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = BytesMut::with_capacity(2 + reason.len());
        if let Some(code) = code {
            payload.put_u16(code.0);
            payload.put_slice(reason.as_bytes());
        }
        let payload = Payload::from(payload.freeze());
        self.queue_frame(control_header(OpCode::Close, payload.len()), payload);
    }

    /// Encodes one frame into the output queue: unmasked with the payload
    /// shared (server), or masked while copying (client).
    #[inline]
    fn queue_frame(&mut self, header: FrameHeader, payload: Payload) {
        if let Some((data, len)) = payload.inline_parts() {
            let mut head = [0u8; MAX_HEADER_LEN];
            header.encode(&mut head);
            return self.queue_short(head[0], data, len);
        }
        let mut head = [0u8; MAX_HEADER_LEN];
        match self.role {
            Role::Server => {
                let n = header.encode(&mut head);
                if payload.len() <= COPY_THRESHOLD {
                    let tail = self.tx.tail(n + payload.len());
                    tail.extend_from_slice(&head[..n]);
                    tail.extend_from_slice(&payload);
                } else {
                    self.tx.push_large(&head[..n], payload.into_bytes());
                }
            }
            Role::Client => {
                let key = self.rng.mask_key();
                let n = FrameHeader { mask: Some(key), ..header }.encode(&mut head);
                let tail = self.tx.tail(n + payload.len());
                tail.extend_from_slice(&head[..n]);
                mask::extend_masked(tail, &payload, key);
            }
        }
    }

    /// Encodes one frame with an inline payload (at most
    /// [`INLINE_CAPACITY`] bytes, so a 7-bit length) and first header byte
    /// `b0` into the output queue: a server frame as 2 header bytes and
    /// `data`, a client frame as 6 header bytes and `data` masked. Every copy
    /// is of fixed size (all of `data`), trimmed to the frame's length after.
    #[inline(always)]
    fn queue_short(&mut self, b0: u8, data: &[u8; INLINE_CAPACITY], len: usize) {
        let len7 = len.min(INLINE_CAPACITY) as u8;
        match self.role {
            Role::Server => {
                let mut frame = [0u8; 2 + INLINE_CAPACITY];
                frame[0] = b0;
                frame[1] = len7;
                frame[2..].copy_from_slice(data);
                self.tx.push_prefix(&frame, 2 + usize::from(len7));
            }
            Role::Client => {
                let key = self.rng.mask_key();
                let mut frame = [0u8; 6 + INLINE_CAPACITY];
                frame[0] = b0;
                frame[1] = 0x80 | len7;
                frame[2..6].copy_from_slice(&key);
                frame[6..].copy_from_slice(&mask::mask_block(data, key));
                self.tx.push_prefix(&frame, 6 + usize::from(len7));
            }
        }
    }
}

fn control_header(opcode: OpCode, len: usize) -> FrameHeader {
    FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: len as u64 }
}
