//! The user's callbacks and the order in which sessions call them.
//!
//! - `on_connect` once the opening handshake completed; then `on_message` /
//!   `on_binary` for every message, in order;
//! - on failure `on_error`, then `on_close`; a normal closure calls only
//!   `on_close`;
//! - `on_close` exactly once, and only for connections that got `on_connect`;
//! - never while a registry or handler lock is held: a callback may send,
//!   broadcast, close, or register other callbacks.
//!
//! A panicking callback is caught: it is logged and the connection is
//! closed with 1011 (internal error); the process and the other connections
//! go on.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crest_proto::{CloseCode, Payload, Text};

use crate::conn::Conn;
use crate::error::Error;

pub(crate) type OnConnect = dyn Fn(&Conn) + Send + Sync;
pub(crate) type OnMessage = dyn Fn(&Conn, Text) + Send + Sync;
pub(crate) type OnBinary = dyn Fn(&Conn, Payload) + Send + Sync;
pub(crate) type OnClose = dyn Fn(&Conn, CloseCode, &str) + Send + Sync;
pub(crate) type OnError = dyn Fn(&Conn, &Error) + Send + Sync;

/// One endpoint's callbacks; replaced as a whole when one is set, so a
/// session takes a snapshot (`Arc`) and calls it without any lock held.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    pub(crate) on_connect: Option<Arc<OnConnect>>,
    pub(crate) on_message: Option<Arc<OnMessage>>,
    pub(crate) on_binary: Option<Arc<OnBinary>>,
    pub(crate) on_close: Option<Arc<OnClose>>,
    pub(crate) on_error: Option<Arc<OnError>>,
}

/// The shared, replaceable set of callbacks.
/// A server's or client's callbacks: replaced as a whole when one is set.
/// Every replacement (of any cell) bumps one process-wide version, so that
/// sessions can keep the set they took (see [`Cached`]) and check it with
/// one atomic load per batch of events.
#[derive(Default)]
pub(crate) struct HandlerCell(RwLock<Arc<Handlers>>);

/// Bumped by every [`HandlerCell::update`].
static VERSION: AtomicU64 = AtomicU64::new(0);

/// A session's copy of a [`HandlerCell`]'s callbacks and the version when
/// taken. A session that moves to another cell (a server connection once
/// routed) must drop its copy.
pub(crate) struct Cached {
    version: u64,
    handlers: Arc<Handlers>,
}

impl HandlerCell {
    pub(crate) fn get(&self) -> Arc<Handlers> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The current callbacks, through `cache` (refreshed when any cell
    /// changed since it was taken).
    pub(crate) fn cached<'a>(&self, cache: &'a mut Option<Cached>) -> &'a Handlers {
        let version = VERSION.load(Ordering::Acquire);
        if cache.as_ref().is_some_and(|c| c.version != version) {
            *cache = None;
        }
        &cache.get_or_insert_with(|| Cached { version, handlers: self.get() }).handlers
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Handlers)) {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = Handlers::clone(&guard);
        f(&mut next);
        *guard = Arc::new(next);
        VERSION.fetch_add(1, Ordering::Release);
    }
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached").field("version", &self.version).finish_non_exhaustive()
    }
}

impl fmt::Debug for HandlerCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.get();
        f.debug_struct("Handlers")
            .field("on_connect", &h.on_connect.is_some())
            .field("on_message", &h.on_message.is_some())
            .field("on_binary", &h.on_binary.is_some())
            .field("on_close", &h.on_close.is_some())
            .field("on_error", &h.on_error.is_some())
            .finish()
    }
}

/// Runs a user callback; `false` if it panicked (already logged).
pub(crate) fn call(conn: &Conn, what: &'static str, f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(conn = %conn.id(), callback = what, "callback panicked: {msg}");
            false
        }
    }
}

/// Callback setters shared by [`WebSocketServer`](crate::WebSocketServer)
/// and [`WebSocketClient`](crate::WebSocketClient).
macro_rules! handler_setters {
    () => {
        /// Called once the opening handshake completed, before any message.
        pub fn on_connect(&self, f: impl Fn(&Conn) + Send + Sync + 'static) -> &Self {
            self.handlers().update(|h| h.on_connect = Some(std::sync::Arc::new(f)));
            self
        }

        /// Called for every text message. [`Text`](crest_proto::Text)
        /// derefs to `&str`; sending it on (`conn.send(msg)`) copies nothing.
        pub fn on_message(&self, f: impl Fn(&Conn, crest_proto::Text) + Send + Sync + 'static) -> &Self {
            self.handlers().update(|h| h.on_message = Some(std::sync::Arc::new(f)));
            self
        }

        /// Called for every binary message. [`Payload`](crest_proto::Payload)
        /// derefs to `&[u8]` and converts into `Bytes`.
        pub fn on_binary(&self, f: impl Fn(&Conn, crest_proto::Payload) + Send + Sync + 'static) -> &Self {
            self.handlers().update(|h| h.on_binary = Some(std::sync::Arc::new(f)));
            self
        }

        /// Called once when a connection that got `on_connect` ends, with the
        /// close code and reason: the peer's for a closing handshake (1005
        /// when its Close frame had none), the one sent when the connection
        /// failed, or 1006 when the transport ended without a Close frame.
        pub fn on_close(&self, f: impl Fn(&Conn, crest_proto::CloseCode, &str) + Send + Sync + 'static) -> &Self {
            self.handlers().update(|h| h.on_close = Some(std::sync::Arc::new(f)));
            self
        }

        /// Called when an open connection fails (protocol violation, timeout,
        /// I/O error, slow consumer), just before `on_close`.
        pub fn on_error(&self, f: impl Fn(&Conn, &Error) + Send + Sync + 'static) -> &Self {
            self.handlers().update(|h| h.on_error = Some(std::sync::Arc::new(f)));
            self
        }
    };
}

pub(crate) use handler_setters;
