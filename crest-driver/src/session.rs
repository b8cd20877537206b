//! [`Session`]: every decision of a per-connection driver loop, without I/O.
//!
//! An adapter's loop only moves bytes and waits:
//!
//! ```text
//! loop {
//!     if session.wants_write()    { write session.io_slices(..) vectored; session.transmitted(n) }
//!     if session.wants_shutdown() { shut down the write side; session.shutdown_sent() }
//!     if session.is_finished()    { drop the socket; break }
//!     if session.wants_read() && socket readable {
//!         read into session.read_buf(); session.received(now)   // or receive_eof() / read_blocked()
//!     }
//!     if session.poll_timeout() has passed { session.handle_timeout(now) }
//!     if !session.handle_commands(Instant::now) && session.arm(waker) { wait for socket, timer or waker }
//! }
//! ```
//!
//! The session routes and authenticates the upgrade (server), applies the
//! commands of [`Conn`] handles, keeps the registry, and calls the callbacks
//! in the documented order (see the `handler` module docs).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use crest_proto::{CloseCode, Connection, Event, Request, Response};

use crate::client::ClientPlan;
use crate::conn::{Cmd, Conn, Info, CLOSED, OPEN};
use crate::error::{Error, Result};
use crate::handler::{call, Cached, HandlerCell, Handlers};
use crate::router::{text, Route, Router};
use crate::server::WebSocketServer;
use crate::wire::{Transmit, Wire};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opening handshake; no callback has run.
    Handshake,
    /// `on_connect` ran; `on_close` is owed.
    Open,
    /// `on_close` ran, or the connection never opened.
    Done,
}

enum Side {
    Server {
        router: Arc<Router>,
        /// The endpoint that accepted the upgrade (holding a slot).
        server: Option<WebSocketServer>,
    },
    Client {
        client: crate::WebSocketClient,
        resource: Option<Box<str>>,
    },
}

/// One connection's driver state: a [`Wire`] (the protocol and its buffers)
/// plus the handle, the endpoint, and the callback phase.
pub struct Session {
    wire: Wire,
    handle: Conn,
    side: Side,
    phase: Phase,
    opened: bool,
    /// Client: why the opening handshake failed.
    error: Option<Box<Error>>,
    /// The callbacks, as last taken from the server or client.
    handlers: Option<Cached>,
}

impl Session {
    /// Server: a connection just accepted by `router`'s listener.
    pub fn accept(router: &Arc<Router>, peer_addr: SocketAddr, now: Instant) -> Self {
        let handle = Conn::new(peer_addr, usize::MAX);
        let mut wire = Wire::new(Connection::server(router.shared_config(), now), now);
        if !router.shutdown().register(&handle) {
            wire.abort(); // shutting down: refuse by closing
        }
        Self {
            wire,
            handle,
            side: Side::Server { router: router.clone(), server: None },
            phase: Phase::Handshake,
            opened: false,
            error: None,
            handlers: None,
        }
    }

    /// Client: a connection to `peer_addr` (a socket the adapter connected
    /// to `plan.host:plan.port`); its request is ready to be written.
    ///
    /// # Errors
    /// [`Error::Send`] if the request's headers would break the HTTP head.
    pub fn connect(plan: ClientPlan, peer_addr: SocketAddr, now: Instant) -> Result<Self> {
        let conn = Connection::client(plan.request, plan.config, now)?;
        Ok(Self {
            wire: Wire::new(conn, now),
            handle: Conn::new(peer_addr, plan.max_queued_bytes),
            side: Side::Client { client: plan.client, resource: Some(plan.resource.into()) },
            phase: Phase::Handshake,
            opened: false,
            error: None,
            handlers: None,
        })
    }

    /// The connection's handle.
    pub fn handle(&self) -> &Conn {
        &self.handle
    }

    /// Whether the opening handshake completed and `on_connect` ran (the
    /// connection may have closed since).
    pub fn has_opened(&self) -> bool {
        self.opened
    }

    /// Client: why the connection failed before opening.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take().map(|e| *e)
    }

    /// Client, once the adapter drove the session until
    /// [`has_opened`](Self::has_opened) or the end: the connection's handle,
    /// to return from `connect`.
    ///
    /// # Errors
    /// Why the connection failed before opening ([`Error::Closed`] if no
    /// reason was recorded).
    pub fn connected(&mut self) -> Result<Conn> {
        if !self.opened {
            return Err(self.take_error().unwrap_or(Error::Closed));
        }
        Ok(self.handle.clone())
    }

    // ----- inputs -----

    /// See [`Wire::wants_read`].
    pub fn wants_read(&self) -> bool {
        self.wire.wants_read()
    }

    /// See [`Wire::read_buf`].
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.wire.read_buf()
    }

    /// Bytes were appended to [`read_buf`](Self::read_buf): process them,
    /// calling callbacks.
    pub fn received(&mut self, now: Instant) {
        let drained = self.wire.feed(now);
        self.step();
        if drained {
            self.wire.read_blocked();
        }
    }

    /// See [`Wire::read_blocked`].
    pub fn read_blocked(&mut self) {
        self.wire.read_blocked();
    }

    /// The peer closed the TCP connection.
    pub fn receive_eof(&mut self) {
        if self.wire.receive_eof() {
            self.step();
        }
        self.publish();
    }

    /// The socket failed: the connection ends (`on_error`, then `on_close`
    /// with 1006) and the socket is to be dropped.
    pub fn io_error(&mut self, err: io::Error) {
        if self.wire.is_finished() {
            return;
        }
        tracing::debug!(conn = %self.handle.id(), "I/O error: {err}");
        self.fail(Error::Io(err));
    }

    /// The deadline of [`poll_timeout`](Self::poll_timeout) came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.wire.handle_timeout(now) {
            self.step();
        }
        self.publish();
    }

    /// Applies the commands queued by handles (sends, closes, broadcasts,
    /// shutdown). Returns whether there were any. `now` is called only if
    /// there are (pass `Instant::now`).
    pub fn handle_commands(&mut self, now: impl FnOnce() -> Instant) -> bool {
        if !self.apply_commands(now) {
            return false;
        }
        self.step();
        true
    }

    /// Applies the queued commands to the connection, without dispatching
    /// its events. Returns whether there were any.
    fn apply_commands(&mut self, now: impl FnOnce() -> Instant) -> bool {
        let mut shutdown = false;
        let overflow;
        if !self.handle.has_commands() {
            return false;
        }
        let now = {
            let mut inbox = self.handle.inbox();
            if inbox.cmds.is_empty() && inbox.overflow.is_none() {
                self.handle.drained(&inbox);
                return false;
            }
            let now = now();
            overflow = inbox.overflow.take();
            let conn = self.wire.conn_mut();
            while let Some(cmd) = inbox.cmds.pop_front() {
                // Refusals (the connection closed meanwhile) drop the command.
                let _ = match cmd {
                    Cmd::Send(message) => conn.send(message),
                    Cmd::Encoded(message) => conn.send_encoded(&message),
                    Cmd::Close(code, reason) => conn.close(now, code, &reason),
                    Cmd::Shutdown => {
                        shutdown = true;
                        Ok(())
                    }
                };
            }
            inbox.bytes = 0;
            self.handle.drained(&inbox);
            now
        };
        if let Some(err) = overflow {
            tracing::warn!(conn = %self.handle.id(), "{err}; disconnecting");
            self.fail(*err);
            return true;
        }
        if shutdown {
            if self.phase == Phase::Open && self.wire.conn().is_open() {
                self.handle.set_state(crate::conn::CLOSING);
                let _ = self.wire.conn_mut().close(now, CloseCode::GOING_AWAY, "server shutting down");
            } else if self.phase == Phase::Handshake {
                self.wire.abort();
            }
        }
        true
    }

    /// The rest of one round of the adapter's loop, after reading:
    /// [`handle_timeout`](Self::handle_timeout) if the adapter's timer for
    /// [`poll_timeout`](Self::poll_timeout) `fired`, then
    /// [`handle_commands`](Self::handle_commands). Returns whether either
    /// did anything.
    #[inline]
    pub fn handle_wakeups(&mut self, fired: bool, now: impl Fn() -> Instant) -> bool {
        if !fired && !self.handle.has_commands() {
            return false; // the usual round: nothing to do, nothing to lock
        }
        self.handle_wakeups_now(fired, now)
    }

    #[inline(never)]
    fn handle_wakeups_now(&mut self, fired: bool, now: impl Fn() -> Instant) -> bool {
        if fired {
            self.handle_timeout(now());
        }
        self.handle_commands(now) || fired
    }

    /// Registers `waker` to be woken by the next command. Returns `false`
    /// (registering nothing) if commands are already waiting: call
    /// [`handle_commands`](Self::handle_commands) again instead of sleeping.
    pub fn arm(&mut self, waker: &Waker) -> bool {
        self.handle.arm(waker)
    }

    // ----- outputs -----

    /// See [`Wire::wants_shutdown`].
    pub fn wants_shutdown(&self) -> bool {
        self.wire.wants_shutdown()
    }

    /// The outcome of polling the socket's write-side shutdown while
    /// [`wants_shutdown`](Self::wants_shutdown): done, failed, or (`Pending`)
    /// not yet.
    pub fn shutdown_polled(&mut self, polled: Poll<io::Result<()>>) {
        match polled {
            Poll::Ready(Ok(())) => self.shutdown_sent(),
            Poll::Ready(Err(e)) => self.io_error(e),
            Poll::Pending => {}
        }
    }

    /// See [`Wire::shutdown_sent`].
    pub fn shutdown_sent(&mut self) {
        self.wire.shutdown_sent();
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), if ever.
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wire.poll_timeout()
    }

    /// Whether the socket should be dropped now (the loop ends).
    pub fn is_finished(&self) -> bool {
        self.wire.is_finished()
    }

    // ----- internals -----

    /// After every input: dispatch the connection's events, then update the
    /// wire state.
    ///
    /// What a callback queued is applied before the next event is taken:
    /// crest-proto parses frames as events are polled, so a reply to a
    /// message goes out before the Close that a later, invalid frame causes.
    fn step(&mut self) {
        let mut handlers = self.handlers.take();
        let mut armed = true;
        while let Some(event) = self.wire.conn_mut().poll_event() {
            if std::mem::take(&mut armed) {
                // This task is running and reads the inbox before it sleeps
                // again: what the callbacks queue must not wake it (a wasted
                // poll per message).
                self.handle.disarm();
            }
            let now = self.wire.now();
            self.dispatch(event, &mut handlers);
            self.apply_commands(|| now);
        }
        self.handlers = handlers;
        self.wire.update();
        self.publish();
    }

    /// Calls the callback an event calls for, if any.
    fn dispatch(&mut self, event: Event, handlers: &mut Option<Cached>) {
        match event {
            Event::Request(request) => {
                self.decide(request);
                *handlers = None; // the routed server's set from now on
            }
            Event::Open => self.opened(handlers),
            Event::Text(text) if self.phase == Phase::Open => {
                if let Some(f) = &self.handlers(handlers).on_message {
                    let ok = call(&self.handle, "on_message", || f(&self.handle, text));
                    self.after_callback(ok);
                }
            }
            Event::Binary(data) if self.phase == Phase::Open => {
                if let Some(f) = &self.handlers(handlers).on_binary {
                    let ok = call(&self.handle, "on_binary", || f(&self.handle, data));
                    self.after_callback(ok);
                }
            }
            Event::Error(e) => {
                if matches!(e, crest_proto::Error::Timeout(_)) {
                    self.wire.skip_linger(); // the peer stopped answering
                }
                self.report_error(Error::Protocol(e), handlers);
            }
            Event::Closed(frame) => self.closed(frame.code, &frame.reason, handlers),
            Event::Text(_) | Event::Binary(_) | Event::Ping(_) | Event::Pong(_) => {}
        }
    }

    /// Publishes the unsent byte count for the handles' queue limit.
    fn publish(&self) {
        self.handle.0.unsent.store(self.wire.unsent(), std::sync::atomic::Ordering::Relaxed);
    }

    fn handler_cell(&self) -> &HandlerCell {
        match &self.side {
            Side::Server { server: Some(s), .. } => s.handlers(),
            Side::Client { client, .. } => client.handlers(),
            Side::Server { server: None, .. } => {
                static NONE: std::sync::OnceLock<HandlerCell> = std::sync::OnceLock::new();
                NONE.get_or_init(HandlerCell::default)
            }
        }
    }

    fn handlers<'a>(&self, cache: &'a mut Option<Cached>) -> &'a Handlers {
        self.handler_cell().cached(cache)
    }

    /// A callback panicked: close with 1011 (internal error).
    fn after_callback(&mut self, ok: bool) {
        if !ok && self.wire.conn().is_open() {
            self.handle.set_state(crate::conn::CLOSING);
            let now = self.wire.now();
            let _ = self.wire.conn_mut().close(now, CloseCode::INTERNAL_ERROR, "internal error");
        }
    }

    /// Server: route, check and authenticate the request, then accept or respond.
    fn decide(&mut self, request: Box<Request>) {
        let Side::Server { router, .. } = &self.side else {
            return;
        };
        let router = router.clone();
        let server = if router.shutdown().is_triggered() {
            Err(text(503, "server shutting down"))
        } else {
            match router.route_request(&request) {
                Route::Respond(response) => Err(response),
                Route::WebSocket(server) => Ok(server.clone()),
            }
        };
        let server = match server {
            Ok(server) => server,
            Err(response) => return self.respond(response),
        };
        let settings = server.settings();
        if !settings.origin_allowed(request.origin()) {
            tracing::debug!(origin = ?request.origin(), "origin not allowed");
            return self.respond(text(403, "origin not allowed"));
        }
        if !server.reserve(settings.max_connections) {
            tracing::warn!(limit = settings.max_connections, "connection limit reached");
            return self.respond(text(503, "too many connections"));
        }
        let peer = self.handle.peer_addr();
        let decision = match server.hook() {
            None => Ok(crest_proto::Accept::new()),
            Some(hook) => {
                let mut decision = Err(text(500, "internal error"));
                call(&self.handle, "on_upgrade", || decision = hook(&request, peer));
                decision
            }
        };
        let accepted = decision.and_then(|accept| {
            let conn = self.wire.conn_mut();
            let _ = conn.set_config(server.shared_config());
            conn.accept(accept).map_err(|e| {
                tracing::error!("cannot accept the upgrade as the hook answered: {e}");
                text(500, "internal error")
            })
        });
        match accepted {
            Ok(()) => {
                let protocol = self.wire.conn().protocol();
                self.handle.set_info(Info::server(&request, protocol));
                self.handle.set_max_queued(settings.max_queued_bytes);
                if let Side::Server { server: slot, .. } = &mut self.side {
                    *slot = Some(server);
                }
            }
            Err(response) => {
                server.release();
                self.respond(response);
            }
        }
    }

    fn respond(&mut self, response: Response) {
        tracing::debug!(status = response.status(), "answering without upgrade");
        let _ = self.wire.conn_mut().respond(response);
    }

    fn opened(&mut self, cache: &mut Option<Cached>) {
        if let Side::Client { resource, .. } = &mut self.side {
            let resource = resource.take().unwrap_or_default();
            let protocol = self.wire.conn().protocol();
            self.handle.set_info(Info::client(&resource, protocol));
        }
        self.phase = Phase::Open;
        self.opened = true;
        self.handle.set_state(OPEN);
        tracing::debug!(conn = %self.handle.id(), peer = %self.handle.peer_addr(), path = self.handle.path(), "open");
        let h = self.handlers(cache);
        if let Some(f) = &h.on_connect {
            let ok = call(&self.handle, "on_connect", || f(&self.handle));
            self.after_callback(ok);
        }
        if let Side::Server { server: Some(s), .. } = &self.side {
            if self.phase == Phase::Open {
                s.register(&self.handle);
            }
        }
    }

    fn report_error(&mut self, err: Error, cache: &mut Option<Cached>) {
        match self.phase {
            Phase::Open => {
                tracing::debug!(conn = %self.handle.id(), "failed: {err}");
                let h = self.handlers(cache);
                if let Some(f) = &h.on_error {
                    call(&self.handle, "on_error", || f(&self.handle, &err));
                }
            }
            Phase::Handshake => {
                tracing::debug!(peer = %self.handle.peer_addr(), "handshake failed: {err}");
                if self.error.is_none() {
                    self.error = Some(Box::new(err));
                }
            }
            Phase::Done => {}
        }
    }

    fn closed(&mut self, code: CloseCode, reason: &str, cache: &mut Option<Cached>) {
        self.handle.set_state(CLOSED);
        if self.phase != Phase::Open {
            self.phase = Phase::Done;
            return;
        }
        self.phase = Phase::Done;
        if let Side::Server { server: Some(s), .. } = &self.side {
            s.unregister(&self.handle);
            s.release();
        }
        tracing::debug!(conn = %self.handle.id(), %code, reason, "closed");
        let h = self.handlers(cache);
        if let Some(f) = &h.on_close {
            call(&self.handle, "on_close", || f(&self.handle, code, reason));
        }
    }

    /// Ends the connection now: `on_error`, `on_close(1006)`, drop the socket.
    fn fail(&mut self, err: Error) {
        let mut cache = None;
        self.report_error(err, &mut cache);
        self.wire.receive_eof(); // the protocol reports Closed (1006)
        self.wire.abort();
        self.step();
    }
}

impl Transmit for Session {
    fn wants_write(&mut self) -> bool {
        self.wire.wants_write()
    }

    fn io_slices<'a>(&'a self, dst: &mut [io::IoSlice<'a>]) -> usize {
        self.wire.io_slices(dst)
    }

    fn transmitted(&mut self, n: usize) {
        self.wire.transmitted(n);
        self.publish();
    }
}

impl Drop for Session {
    /// A session dropped while open (its task was cancelled, the runtime shut
    /// down) still unregisters and owes `on_close` (1006).
    fn drop(&mut self) {
        self.handle.set_state(CLOSED);
        if self.phase == Phase::Open {
            if std::thread::panicking() {
                if let Side::Server { server: Some(s), .. } = &self.side {
                    s.unregister(&self.handle);
                    s.release();
                }
            } else {
                self.closed(CloseCode::ABNORMAL, "", &mut None);
            }
        }
        if let Side::Server { router, .. } = &self.side {
            router.shutdown().unregister(self.handle.id());
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("conn", &self.handle)
            .field("phase", &self.phase)
            .field("wire", &self.wire)
            .finish()
    }
}
