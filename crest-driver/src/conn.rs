//! [`Conn`]: the cheap, clonable handle to one connection, usable from any
//! task or thread; and the inbox through which it reaches the connection's
//! session.
//!
//! A `Conn` is an `Arc` of [`Shared`]: the connection's id and metadata, its
//! state, and an inbox (`Mutex<VecDeque<Cmd>>` plus the session's waker). A
//! command costs one uncontended lock; an idle connection's inbox holds no
//! allocation. The session drains the inbox and applies the commands to its
//! `crest_proto::Connection`.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;

use crest_proto::frame::MAX_CONTROL_PAYLOAD;
use crest_proto::{CloseCode, EncodedMessage, Message, Payload, Request, SendError, Text, MAX_CLOSE_REASON};

use crate::error::{Error, Result};

/// A connection's identifier: unique in the process, stable for the
/// connection's life, cheap to copy, hash and print (as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a connection stands, as seen by handles (the session writes it).
pub(crate) const CONNECTING: u8 = 0;
pub(crate) const OPEN: u8 = 1;
/// `close` was called (or the peer's Close arrived): nothing more may be sent.
pub(crate) const CLOSING: u8 = 2;
pub(crate) const CLOSED: u8 = 3;

/// A command from a handle to the session.
#[derive(Debug)]
pub(crate) enum Cmd {
    Send(Message),
    Encoded(Arc<EncodedMessage>),
    Close(CloseCode, Box<str>),
    /// Graceful shutdown: close 1001 if open, else drop.
    Shutdown,
}

/// The inbox's queue, oldest first: the oldest command inline, the others
/// in a `VecDeque`. A connection rarely has more than one command waiting (a
/// callback's reply), and that one costs no allocation; the `VecDeque` is
/// released whenever the session has drained it.
#[derive(Debug, Default)]
pub(crate) struct Cmds {
    first: Option<Cmd>,
    rest: VecDeque<Cmd>,
}

impl Cmds {
    fn push_back(&mut self, cmd: Cmd) {
        if self.is_empty() {
            self.first = Some(cmd);
        } else {
            self.rest.push_back(cmd);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<Cmd> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

/// What the session reads from the inbox.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    pub(crate) cmds: Cmds,
    /// Payload bytes in `cmds`.
    pub(crate) bytes: usize,
    /// A send was refused for the queue limit: disconnect the slow consumer.
    pub(crate) overflow: Option<Box<Error>>,
    waker: Option<Waker>,
}

/// What a connection keeps of its opening request, in one allocation:
/// length-prefixed fields `target, protocol, (name, value)*`. A browser's
/// upgrade request has about fifteen headers; kept as a `Request` they would
/// cost some thirty allocations per connection for the life of the
/// connection, here they cost one.
#[derive(Debug)]
pub(crate) struct Info(Box<[u8]>);

impl Info {
    /// Server: the accepted upgrade request and the chosen subprotocol.
    pub(crate) fn server(request: &Request, protocol: Option<&str>) -> Self {
        let headers = request.headers().flat_map(|(n, v)| [n.as_bytes(), v]);
        Self::new([request.uri().as_bytes(), protocol.unwrap_or("").as_bytes()].into_iter().chain(headers))
    }

    /// Client: the requested resource and the subprotocol the server chose.
    pub(crate) fn client(resource: &str, protocol: Option<&str>) -> Self {
        Self::new([resource.as_bytes(), protocol.unwrap_or("").as_bytes()].into_iter())
    }

    fn new<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Self {
        let fields: Vec<&[u8]> = fields.collect();
        let mut data = Vec::with_capacity(fields.iter().map(|f| 4 + f.len()).sum());
        for f in fields {
            // Every field is part of a request head bounded by
            // `Config::max_handshake_size`, far below 4 GiB.
            data.extend_from_slice(&u32::try_from(f.len()).unwrap_or(u32::MAX).to_le_bytes());
            data.extend_from_slice(f);
        }
        Self(data.into_boxed_slice())
    }

    fn fields(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
            let (field, tail) = tail.split_at(len);
            rest = tail;
            Some(field)
        })
    }

    fn str_field(&self, n: usize) -> &str {
        self.fields().nth(n).and_then(|f| std::str::from_utf8(f).ok()).unwrap_or("")
    }

    fn target(&self) -> &str {
        self.str_field(0)
    }

    fn protocol(&self) -> Option<&str> {
        Some(self.str_field(1)).filter(|p| !p.is_empty())
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut fields = self.fields().skip(2);
        std::iter::from_fn(move || {
            let name = fields.next()?;
            let value = fields.next()?;
            Some((std::str::from_utf8(name).unwrap_or(""), value))
        })
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    id: ConnId,
    peer_addr: SocketAddr,
    state: AtomicU8,
    /// Bytes the session holds unsent (encoded), published after every step.
    pub(crate) unsent: AtomicUsize,
    max_queued: AtomicUsize,
    info: OnceLock<Info>,
    inbox: Mutex<Inbox>,
    /// The inbox has commands (or an overflow) for the session: set with the
    /// inbox locked, so the session can skip locking an empty inbox.
    queued: AtomicBool,
    /// The session is idle and must be woken by the next command. Set with
    /// the inbox locked (after checking it is empty) and taken by the
    /// command that wakes it; the running session clears it without the lock
    /// (a command racing with that wakes it once for nothing).
    armed: AtomicBool,
}

/// A handle to one WebSocket connection: send, close, inspect.
///
/// Cheap to clone (an `Arc`), `Send + Sync`, usable from any task or thread,
/// also after the connection closed: commands then return
/// [`Error::Closed`], never panic. Commands are queued and applied in order
/// by the connection's own task; a successful `send` means *queued*, not
/// *delivered*.
///
/// ```
/// # let conn = crest_driver::Conn::detached("127.0.0.1:1".parse().unwrap());
/// // In a callback: `ws.on_connect(|conn| { ... })`.
/// println!("client {} from {}", conn.id(), conn.peer_addr());
/// if conn.send(r#"{"type":"welcome"}"#).is_err() {
///     // Closed (or a slow consumer being dropped): nothing to do.
/// }
/// ```
#[derive(Clone)]
pub struct Conn(pub(crate) Arc<Shared>);

impl Conn {
    pub(crate) fn new(peer_addr: SocketAddr, max_queued: usize) -> Self {
        Self(Arc::new(Shared {
            id: ConnId::next(),
            peer_addr,
            state: AtomicU8::new(CONNECTING),
            unsent: AtomicUsize::new(0),
            max_queued: AtomicUsize::new(max_queued),
            info: OnceLock::new(),
            inbox: Mutex::new(Inbox::default()),
            queued: AtomicBool::new(false),
            armed: AtomicBool::new(false),
        }))
    }

    /// A handle attached to no connection (always closed): for examples and
    /// tests of code that takes a `Conn`.
    pub fn detached(peer_addr: SocketAddr) -> Self {
        let conn = Self::new(peer_addr, usize::MAX);
        conn.set_state(CLOSED);
        conn
    }

    /// The connection's id: unique, stable, `Display`.
    pub fn id(&self) -> ConnId {
        self.0.id
    }

    /// Queues a text message.
    ///
    /// # Errors
    /// [`Error::Closed`] unless open; [`Error::QueueFull`] when the peer does
    /// not read fast enough (the connection is then dropped).
    pub fn send(&self, text: impl Into<Text>) -> Result<()> {
        self.send_message(Message::Text(text.into()))
    }

    /// Queues a binary message (`Vec<u8>`, `Bytes`, `&[u8]`, [`Payload`], ...).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_binary(&self, data: impl Into<Payload>) -> Result<()> {
        self.send_message(Message::Binary(data.into()))
    }

    /// Queues a Ping (the peer answers with a Pong, reported to no callback).
    ///
    /// # Errors
    /// As [`send`](Self::send); [`Error::Send`] for a payload over 125 bytes.
    pub fn ping(&self, payload: impl Into<Payload>) -> Result<()> {
        self.send_message(Message::Ping(payload.into()))
    }

    /// Queues any [`Message`].
    ///
    /// # Errors
    /// As [`send`](Self::send) and [`ping`](Self::ping).
    pub fn send_message(&self, message: Message) -> Result<()> {
        let len = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            Message::Ping(b) | Message::Pong(b) => {
                if b.len() > MAX_CONTROL_PAYLOAD {
                    return Err(SendError::ControlFrameTooLarge(b.len()).into());
                }
                b.len()
            }
        };
        self.push(Cmd::Send(message), len)
    }

    pub(crate) fn send_encoded(&self, message: Arc<EncodedMessage>) -> Result<()> {
        let len = message.len();
        self.push(Cmd::Encoded(message), len)
    }

    /// Starts the closing handshake with `code` and `reason` (RFC 6455
    /// §7.1.2): messages queued before are still sent, nothing after.
    /// `on_close` follows once the peer answers (or the close timeout passes).
    ///
    /// # Errors
    /// [`Error::Closed`] unless open; [`Error::Send`] for a code that may not
    /// be sent (RFC 6455 §7.4: 1000-1003, 1007-1014, 3000-4999 may) or a
    /// reason over 123 bytes.
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        let code = code.into();
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0).into());
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::CloseReasonTooLong(reason.len()).into());
        }
        let mut inbox = self.inbox();
        if self.0.state.load(Ordering::Acquire) != OPEN {
            return Err(Error::Closed);
        }
        self.set_state(CLOSING);
        inbox.cmds.push_back(Cmd::Close(code, reason.into()));
        self.wake(&inbox);
        Ok(())
    }

    /// Whether messages may be sent: open, and not closing.
    pub fn is_open(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == OPEN
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.0.peer_addr
    }

    /// The request target as sent: path and query (`/ws?room=1`).
    pub fn uri(&self) -> &str {
        self.0.info.get().map_or("", Info::target)
    }

    /// The request path without the query (`/ws`).
    pub fn path(&self) -> &str {
        let uri = self.uri();
        uri.split_once('?').map_or(uri, |(p, _)| p)
    }

    /// The query string without the `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri().split_once('?').map(|(_, q)| q)
    }

    /// Server: the first request header called `name` (case-insensitive), if
    /// UTF-8. A client connection has none.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Server: all request header lines, in order, names as sent. A client
    /// connection has none.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.info.get().into_iter().flat_map(Info::headers)
    }

    /// The negotiated subprotocol (`Sec-WebSocket-Protocol`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.0.info.get()?.protocol()
    }

    /// Bytes queued for this connection and not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.inbox().bytes + self.0.unsent.load(Ordering::Relaxed)
    }

    // ----- for the session -----

    pub(crate) fn set_info(&self, info: Info) {
        let _ = self.0.info.set(info);
    }

    pub(crate) fn set_max_queued(&self, limit: usize) {
        self.0.max_queued.store(limit, Ordering::Relaxed);
    }

    pub(crate) fn set_state(&self, state: u8) {
        self.0.state.store(state, Ordering::Release);
    }

    pub(crate) fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.0.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a command unless closed or over the queue limit.
    fn push(&self, cmd: Cmd, len: usize) -> Result<()> {
        let mut inbox = self.inbox();
        if self.0.state.load(Ordering::Acquire) != OPEN {
            return Err(Error::Closed);
        }
        let queued = inbox.bytes + self.0.unsent.load(Ordering::Relaxed);
        let limit = self.0.max_queued.load(Ordering::Relaxed);
        if queued > 0 && queued.saturating_add(len) > limit {
            let err = || Error::QueueFull { queued, len, limit };
            // The session disconnects the slow consumer; no more sends.
            self.set_state(CLOSING);
            inbox.overflow = Some(Box::new(err()));
            self.wake(&inbox);
            return Err(err());
        }
        inbox.bytes += len;
        inbox.cmds.push_back(cmd);
        self.wake(&inbox);
        Ok(())
    }

    /// Queues a command the session must see whatever the state.
    pub(crate) fn push_control(&self, cmd: Cmd) {
        let mut inbox = self.inbox();
        inbox.cmds.push_back(cmd);
        self.wake(&inbox);
    }

    /// With the inbox locked, after queueing: tell the session.
    fn wake(&self, inbox: &Inbox) {
        self.0.queued.store(true, Ordering::Release);
        if self.0.armed.swap(false, Ordering::AcqRel) {
            if let Some(w) = &inbox.waker {
                w.wake_by_ref();
            }
        }
    }

    /// Session: whether commands may be waiting (if not, the inbox need not
    /// be locked).
    #[inline]
    pub(crate) fn has_commands(&self) -> bool {
        self.0.queued.load(Ordering::Acquire)
    }

    /// Session: with the inbox locked and drained.
    pub(crate) fn drained(&self, _inbox: &Inbox) {
        self.0.queued.store(false, Ordering::Relaxed);
    }

    /// Session: it is running, so the next command need not wake it (it
    /// calls [`arm`](Self::arm) before it sleeps).
    pub(crate) fn disarm(&self) {
        self.0.armed.store(false, Ordering::Relaxed);
    }

    /// Session: registers `waker` for the next command, unless commands are
    /// already waiting. Releases the queue's memory when idle.
    pub(crate) fn arm(&self, waker: &Waker) -> bool {
        let mut inbox = self.inbox();
        if !inbox.cmds.is_empty() || inbox.overflow.is_some() {
            return false;
        }
        if inbox.cmds.rest.capacity() != 0 {
            inbox.cmds.rest = VecDeque::new();
        }
        match &inbox.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => inbox.waker = Some(waker.clone()),
        }
        self.0.armed.store(true, Ordering::Release);
        true
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.0.id)
            .field("peer_addr", &self.0.peer_addr)
            .field("path", &self.path())
            .field("open", &self.is_open())
            .finish()
    }
}

impl PartialEq for Conn {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Conn {}

impl std::hash::Hash for Conn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Conn {
        let c = Conn::new("127.0.0.1:9".parse().unwrap(), 100);
        c.set_state(OPEN);
        c
    }

    #[test]
    fn client_info_splits_path_and_query() {
        let c = open();
        c.set_info(Info::client("/ws?room=1&x", Some("chat")));
        assert_eq!((c.uri(), c.path(), c.query()), ("/ws?room=1&x", "/ws", Some("room=1&x")));
        assert_eq!(c.protocol(), Some("chat"));
        assert_eq!(c.headers().count(), 0);
    }

    #[test]
    fn ids_are_unique_and_print_as_numbers() {
        let (a, b) = (open(), open());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().to_string(), a.id().get().to_string());
    }

    #[test]
    fn closed_handles_refuse_without_panicking() {
        let c = Conn::detached("127.0.0.1:9".parse().unwrap());
        assert!(matches!(c.send("x"), Err(Error::Closed)));
        assert!(matches!(c.close(1000, ""), Err(Error::Closed)));
        assert!(!c.is_open());
        assert_eq!(c.path(), "");
    }

    #[test]
    fn invalid_close_and_ping_are_refused_synchronously() {
        let c = open();
        assert!(matches!(c.close(1005, ""), Err(Error::Send(SendError::InvalidCloseCode(1005)))));
        assert!(matches!(c.close(1000, &"x".repeat(124)), Err(Error::Send(_))));
        assert!(matches!(c.ping(vec![0; 126]), Err(Error::Send(_))));
        assert!(c.is_open());
    }

    #[test]
    fn queue_limit_refuses_and_flags_overflow() {
        let c = open();
        c.send_binary(vec![0; 150]).unwrap(); // alone: always accepted
        assert!(matches!(c.send("x"), Err(Error::QueueFull { queued: 150, len: 1, limit: 100 })));
        assert!(c.inbox().overflow.is_some());
        assert!(!c.is_open());
    }

    #[test]
    fn close_stops_further_sends() {
        let c = open();
        c.close(1000, "bye").unwrap();
        assert!(matches!(c.send("x"), Err(Error::Closed)));
        assert_eq!(c.inbox().cmds.len(), 1);
    }

    #[test]
    fn commands_come_out_in_the_order_they_went_in() {
        let c = open();
        let sent = |cmd: Option<Cmd>| match cmd {
            Some(Cmd::Send(Message::Text(t))) => t.to_string(),
            other => panic!("{other:?}"),
        };
        let mut next = 0;
        for batch in [1, 3, 1, 5] {
            for i in next..next + batch {
                c.send(i.to_string()).unwrap();
            }
            // Take some, push more before the queue is empty, take the rest.
            assert_eq!(sent(c.inbox().cmds.pop_front()), next.to_string());
            c.send("late").unwrap();
            let mut inbox = c.inbox();
            for i in next + 1..next + batch {
                assert_eq!(sent(inbox.cmds.pop_front()), i.to_string());
            }
            assert_eq!(sent(inbox.cmds.pop_front()), "late");
            assert!(inbox.cmds.pop_front().is_none() && inbox.cmds.is_empty());
            next += batch;
        }
    }
}
