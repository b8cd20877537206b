//! [`WebSocketServer`]: one WebSocket endpoint: callbacks, settings, the
//! pre-upgrade hook, and the registry of its open connections.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crest_proto::{Accept, Config, Message, Payload, Request, Response, Text};

use crate::conn::{Conn, ConnId};
use crate::error::Error;
use crate::handler::{handler_setters, HandlerCell};
use crate::registry::Registry;

/// The pre-upgrade hook: sees the request (path, query, headers, `Origin`)
/// and the peer's address, and accepts — optionally choosing a subprotocol
/// and adding response headers — or rejects with an HTTP response.
pub type UpgradeHook = dyn Fn(&Request, SocketAddr) -> Result<Accept, Response> + Send + Sync;

/// Limits and liveness of one endpoint.
///
/// `Settings::default()` then the builder methods, or assign the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Protocol limits and timers for this endpoint's connections (frame and
    /// message size, close timeout, heartbeat, extensions). Default
    /// `Config::default()`. The handshake limits (`max_handshake_size`,
    /// `max_headers`, `handshake_timeout`) that apply before the request is
    /// routed are the app's.
    pub config: Config,
    /// Most open connections; beyond it upgrades are answered with 503.
    /// Default 100,000: far above what one process usually serves, low
    /// enough that a flood of connections fails fast instead of exhausting
    /// memory.
    pub max_connections: usize,
    /// The slow-consumer bound: most bytes queued for one connection and not
    /// yet written to its socket. Default 32 MiB (twice the 16 MiB messages
    /// peers commonly accept).
    ///
    /// **Policy.** A send is refused with [`Error::QueueFull`] when the bytes
    /// already queued plus the new message exceed the limit (a message on an
    /// empty queue is always accepted, whatever its size). The connection is
    /// then dropped at once: what is queued is discarded, the socket is
    /// closed without a closing handshake, `on_error(QueueFull)` and
    /// `on_close(1006)` are called. A peer that does not read can thus hold
    /// at most this much memory, and since sends and broadcasts only queue
    /// (they never wait for a socket), it never slows the other connections.
    pub max_queued_bytes: usize,
    /// Origins allowed to connect (`https://example.com`), compared
    /// ASCII-case-insensitively with the `Origin` header; others get 403.
    /// Default `None`: any origin. Browsers always send `Origin`; a request
    /// without one (a non-browser client) is allowed. This prevents
    /// cross-site WebSocket hijacking (RFC 6455 §10.2).
    pub allowed_origins: Option<Vec<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self { config: Config::default(), max_connections: 100_000, max_queued_bytes: 32 << 20, allowed_origins: None }
    }
}

impl Settings {
    /// Sets the protocol configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Accepts permessage-deflate (RFC 7692) from clients that offer it; see
    /// [`DeflateConfig`](crest_proto::deflate::DeflateConfig). With
    /// `server_no_context_takeover` a broadcast is compressed once for all
    /// recipients; with context takeover (the default, better ratio) each
    /// connection compresses it for itself.
    pub fn deflate(mut self, deflate: crest_proto::deflate::DeflateConfig) -> Self {
        self.config = self.config.with_deflate(deflate);
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`max_queued_bytes`](Self::max_queued_bytes).
    pub fn max_queued_bytes(mut self, n: usize) -> Self {
        self.max_queued_bytes = n;
        self
    }

    /// Sets the largest message accepted (and the largest frame, if lower).
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.config.max_message_size = n;
        self.config.max_frame_size = self.config.max_frame_size.min(n);
        self
    }

    /// Heartbeat: send a Ping every `interval`, and close (1001) a peer from
    /// which nothing arrived for `timeout`. Set `timeout` above `interval`
    /// so that a live peer's Pongs keep it open.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.ping_interval = Some(interval);
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Allows one more origin (see [`allowed_origins`](Self::allowed_origins)).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.get_or_insert_with(Vec::new).push(origin.into());
        self
    }

    /// Whether a request with this `Origin` header may connect.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match (&self.allowed_origins, origin) {
            (None, _) | (Some(_), None) => true,
            (Some(list), Some(o)) => list.iter().any(|a| a.eq_ignore_ascii_case(o.trim())),
        }
    }
}

pub(crate) struct ServerInner {
    handlers: HandlerCell,
    /// The settings, and their `Config` in an `Arc` that every connection shares.
    settings: RwLock<(Arc<Settings>, Arc<Config>)>,
    hook: RwLock<Option<Arc<UpgradeHook>>>,
    registry: Registry,
    /// Slots taken: open connections plus upgrades being accepted.
    slots: AtomicUsize,
}

/// A WebSocket endpoint: callbacks, broadcast, and its open connections.
///
/// Cheap to clone (an `Arc`): clone it into callbacks to broadcast. Route it
/// at a path with the adapter's `App`.
///
/// ```
/// use crest_driver::WebSocketServer;
///
/// let ws = WebSocketServer::new();
/// ws.on_connect(|conn| {
///     println!("Client connected: {}", conn.id());
///     let _ = conn.send(r#"{"type":"welcome","message":"Connected!"}"#);
/// });
/// let all = ws.clone();
/// ws.on_message(move |_conn, message| {
///     println!("Received: {message}");
///     all.broadcast(message); // encoded once, shared by every client
/// });
/// ws.on_close(|conn, code, reason| println!("Client disconnected: {} ({code} {reason})", conn.id()));
/// assert_eq!(ws.connection_count(), 0);
/// ```
///
/// A callback that captures a clone of its own server keeps it alive for as
/// long as the server exists (a reference cycle); servers normally live as
/// long as the process.
#[derive(Clone)]
pub struct WebSocketServer(pub(crate) Arc<ServerInner>);

impl Default for WebSocketServer {
    fn default() -> Self {
        Self::new()
    }
}

impl WebSocketServer {
    /// A server with default [`Settings`] and no callbacks.
    pub fn new() -> Self {
        Self::with_settings(Settings::default())
    }

    /// A server with these settings.
    pub fn with_settings(settings: Settings) -> Self {
        Self(Arc::new(ServerInner {
            handlers: HandlerCell::default(),
            settings: RwLock::new(shared(settings)),
            hook: RwLock::new(None),
            registry: Registry::default(),
            slots: AtomicUsize::new(0),
        }))
    }

    pub(crate) fn handlers(&self) -> &HandlerCell {
        &self.0.handlers
    }

    handler_setters!();

    /// The authentication hook, run before the upgrade (see [`UpgradeHook`]):
    /// return `Ok(Accept::new())` (optionally `.protocol(..)`, `.header(..)`)
    /// to accept, or `Err(Response::new(401))` to reject.
    ///
    /// ```
    /// use crest_driver::{Accept, Response, WebSocketServer};
    ///
    /// let ws = WebSocketServer::new();
    /// ws.on_upgrade(|req, _peer| match req.header("authorization") {
    ///     Some("Bearer secret") if req.protocols().iter().any(|p| p == "chat") => {
    ///         Ok(Accept::new().protocol("chat"))
    ///     }
    ///     Some("Bearer secret") => Ok(Accept::new()),
    ///     _ => Err(Response::new(401).header("WWW-Authenticate", "Bearer").body("who are you?")),
    /// });
    /// ```
    pub fn on_upgrade(
        &self,
        f: impl Fn(&Request, SocketAddr) -> Result<Accept, Response> + Send + Sync + 'static,
    ) -> &Self {
        *self.0.hook.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(f));
        self
    }

    /// Replaces the settings; connections opened from now on use them.
    pub fn set_settings(&self, settings: Settings) -> &Self {
        *self.0.settings.write().unwrap_or_else(PoisonError::into_inner) = shared(settings);
        self
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.0.settings.read().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    pub(crate) fn shared_config(&self) -> Arc<Config> {
        self.0.settings.read().unwrap_or_else(PoisonError::into_inner).1.clone()
    }

    /// Sends a text message to every open connection, encoded once. Returns
    /// how many connections it was queued on (slow consumers over their
    /// queue limit and closing connections are skipped).
    pub fn broadcast(&self, text: impl Into<Text>) -> usize {
        self.fan_out(Message::Text(text.into()), None)
    }

    /// Sends a binary message to every open connection, encoded once.
    pub fn broadcast_binary(&self, data: impl Into<Payload>) -> usize {
        self.fan_out(Message::Binary(data.into()), None)
    }

    /// Like [`broadcast`](Self::broadcast), skipping one connection (usually
    /// the sender).
    pub fn broadcast_except(&self, skip: &Conn, text: impl Into<Text>) -> usize {
        self.fan_out(Message::Text(text.into()), Some(skip.id()))
    }

    /// Like [`broadcast_binary`](Self::broadcast_binary), skipping one connection.
    pub fn broadcast_binary_except(&self, skip: &Conn, data: impl Into<Payload>) -> usize {
        self.fan_out(Message::Binary(data.into()), Some(skip.id()))
    }

    fn fan_out(&self, message: Message, skip: Option<ConnId>) -> usize {
        let max_frame = self.settings().config.max_send_frame_size;
        self.0.registry.broadcast(message, max_frame, skip)
    }

    /// The number of open connections.
    pub fn connection_count(&self) -> usize {
        self.0.registry.len()
    }

    /// Handles to every open connection.
    pub fn connections(&self) -> Vec<Conn> {
        self.0.registry.snapshot()
    }

    /// The open connection with this id.
    pub fn connection(&self, id: ConnId) -> Option<Conn> {
        self.0.registry.get(id)
    }

    // ----- for the session -----

    pub(crate) fn hook(&self) -> Option<Arc<UpgradeHook>> {
        self.0.hook.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Takes a connection slot, unless `max` are taken.
    pub(crate) fn reserve(&self, max: usize) -> bool {
        self.0.slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok()
    }

    pub(crate) fn release(&self) {
        self.0.slots.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn register(&self, conn: &Conn) {
        self.0.registry.insert(conn);
    }

    pub(crate) fn unregister(&self, conn: &Conn) {
        self.0.registry.remove(conn.id());
    }
}

fn shared(settings: Settings) -> (Arc<Settings>, Arc<Config>) {
    let config = Arc::new(settings.config.clone());
    (Arc::new(settings), config)
}

impl fmt::Debug for WebSocketServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketServer")
            .field("connections", &self.connection_count())
            .field("handlers", &self.0.handlers)
            .field("settings", &self.settings())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let s = Settings::default();
        assert!(s.origin_allowed(Some("https://evil.example")));
        let s = s.allow_origin("https://good.example");
        assert!(s.origin_allowed(Some("HTTPS://GOOD.example")));
        assert!(!s.origin_allowed(Some("https://evil.example")));
        assert!(s.origin_allowed(None));
    }

    #[test]
    fn slots_are_bounded() {
        let ws = WebSocketServer::new();
        assert!(ws.reserve(1));
        assert!(!ws.reserve(1));
        ws.release();
        assert!(ws.reserve(1));
    }
}
