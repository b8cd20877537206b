//! [`Router`]: what an app serves at which path.
//!
//! - a WebSocket upgrade to a routed path (or the fallback) goes to that
//!   [`WebSocketServer`];
//! - a plain `GET` (or `HEAD`) on a page path gets the page's fixed HTML body;
//! - a plain request on a WebSocket path gets 426 Upgrade Required;
//! - a page path with another method gets 405; anything else 404.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use crest_proto::{Config, Request, Response};

use crate::server::WebSocketServer;
use crate::shutdown::Shutdown;

/// Paths to endpoints and pages, the handshake configuration, and the
/// app's shutdown signal. Built by the adapter's `App`, then shared by all
/// its connections.
#[derive(Clone, Default)]
pub struct Router {
    sockets: Vec<(String, WebSocketServer)>,
    fallback: Option<WebSocketServer>,
    pages: Vec<(String, Bytes)>,
    config: Arc<Config>,
    shutdown: Shutdown,
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Route<'a> {
    WebSocket(&'a WebSocketServer),
    Respond(Response),
}

impl Router {
    /// A router with no routes (every request gets 404).
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves WebSocket upgrades to `path` (exact match, query ignored) with `server`.
    pub fn route(&mut self, path: impl Into<String>, server: &WebSocketServer) -> &mut Self {
        let path = path.into();
        self.sockets.retain(|(p, _)| *p != path);
        self.sockets.push((path, server.clone()));
        self
    }

    /// Serves WebSocket upgrades to any path no [`route`](Self::route) matches.
    pub fn fallback(&mut self, server: &WebSocketServer) -> &mut Self {
        self.fallback = Some(server.clone());
        self
    }

    /// Answers a plain `GET path` with `html` (`text/html; charset=utf-8`).
    pub fn page(&mut self, path: impl Into<String>, html: impl Into<Bytes>) -> &mut Self {
        let path = path.into();
        self.pages.retain(|(p, _)| *p != path);
        self.pages.push((path, html.into()));
        self
    }

    /// The configuration connections start with, before their request is
    /// routed: its handshake limits (`max_handshake_size`, `max_headers`,
    /// `handshake_timeout`) apply to every request. Each endpoint's own
    /// [`Settings::config`](crate::Settings::config) applies once routed.
    pub fn set_config(&mut self, config: Config) -> &mut Self {
        self.config = Arc::new(config);
        self
    }

    /// The handshake configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn shared_config(&self) -> Arc<Config> {
        self.config.clone()
    }

    /// The app's shutdown signal.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The endpoints, routed ones first, then the fallback.
    pub fn servers(&self) -> impl Iterator<Item = &WebSocketServer> {
        self.sockets.iter().map(|(_, s)| s).chain(&self.fallback)
    }

    pub(crate) fn route_request(&self, req: &Request) -> Route<'_> {
        let path = req.path();
        let socket = self.sockets.iter().find(|(p, _)| p == path).map(|(_, s)| s).or(self.fallback.as_ref());
        if req.is_websocket() {
            return match socket {
                Some(server) => Route::WebSocket(server),
                None => Route::Respond(text(404, "Not Found")),
            };
        }
        let page = self.pages.iter().find(|(p, _)| p == path).map(|(_, b)| b);
        match (req.method(), page, socket) {
            ("GET" | "HEAD", Some(html), _) => {
                let body = if req.method() == "HEAD" { Bytes::new() } else { html.clone() };
                Route::Respond(
                    Response::new(200)
                        .header("Content-Type", "text/html; charset=utf-8")
                        .header("Cache-Control", "no-cache")
                        .body(body),
                )
            }
            (_, Some(_), _) => Route::Respond(text(405, "Method Not Allowed").header("Allow", "GET, HEAD")),
            (_, None, Some(_)) => Route::Respond(
                text(426, "this endpoint speaks WebSocket only")
                    .header("Upgrade", "websocket")
                    .header("Sec-WebSocket-Version", "13"),
            ),
            (_, None, None) => Route::Respond(text(404, "Not Found")),
        }
    }
}

/// A plain-text response.
pub(crate) fn text(status: u16, body: &'static str) -> Response {
    Response::new(status).header("Content-Type", "text/plain; charset=utf-8").body(Bytes::from_static(body.as_bytes()))
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("sockets", &self.sockets.iter().map(|(p, _)| p).collect::<Vec<_>>())
            .field("fallback", &self.fallback.is_some())
            .field("pages", &self.pages.iter().map(|(p, _)| p).collect::<Vec<_>>())
            .finish()
    }
}

/// The routing methods of every adapter's `App` (a struct with a
/// `router: Router` field), which only pass through to its [`Router`]:
/// `route`, `fallback`, `page`, `config` and `shutdown_handle`. Used as
/// `impl App { crest_driver::app_routing_methods!(); ... }`, so that the
/// adapters' `App`s have the same methods with the same docs.
#[macro_export]
macro_rules! app_routing_methods {
    () => {
        /// Serves WebSocket upgrades to `path` (exact match, query ignored) with `server`;
        /// a plain HTTP request there gets 426 Upgrade Required.
        pub fn route(&mut self, path: impl Into<String>, server: &$crate::WebSocketServer) -> &mut Self {
            self.router.route(path, server);
            self
        }

        /// Serves WebSocket upgrades to every path no [`route`](Self::route) matches.
        pub fn fallback(&mut self, server: &$crate::WebSocketServer) -> &mut Self {
            self.router.fallback(server);
            self
        }

        /// Answers a plain `GET path` with this HTML page.
        pub fn page(&mut self, path: impl Into<String>, html: impl Into<$crate::Bytes>) -> &mut Self {
            self.router.page(path, html);
            self
        }

        /// The configuration for the part of the handshake before routing
        /// (`max_handshake_size`, `max_headers`, `handshake_timeout`).
        pub fn config(&mut self, config: $crate::Config) -> &mut Self {
            self.router.set_config(config);
            self
        }

        /// A handle to stop the app gracefully: [`Shutdown::trigger`](crate::Shutdown::trigger)
        /// makes [`serve`](Self::serve) stop accepting, close every connection
        /// with 1001 and return once all are drained.
        pub fn shutdown_handle(&self) -> $crate::Shutdown {
            self.router.shutdown().clone()
        }
    };
}
