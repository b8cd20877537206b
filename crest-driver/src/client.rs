//! [`WebSocketClient`]: the callbacks and options of outgoing connections.
//! The adapters add `connect(url)`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crest_proto::{ClientRequest, Config, WsUri};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::handler::{handler_setters, HandlerCell};

#[derive(Default)]
pub(crate) struct ClientInner {
    handlers: HandlerCell,
    options: Mutex<Options>,
}

#[derive(Debug, Clone)]
struct Options {
    config: Config,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    max_queued_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: Config::default(),
            protocols: Vec::new(),
            headers: Vec::new(),
            max_queued_bytes: crate::Settings::default().max_queued_bytes,
        }
    }
}

/// Callbacks and options for client connections: the same callbacks as
/// [`WebSocketServer`](crate::WebSocketServer), plus the subprotocols and
/// headers to send. Cheap to clone; the adapter's `connect(url)` opens a
/// connection driven by its own task and returns its [`Conn`].
///
/// ```
/// use crest_driver::WebSocketClient;
///
/// let client = WebSocketClient::new();
/// client.protocol("chat").header("Authorization", "Bearer secret");
/// client.on_connect(|conn| {
///     let _ = conn.send(r#"{"type":"join","username":"Alice"}"#);
/// });
/// client.on_message(|_conn, message| println!("Received: {message}"));
/// ```
#[derive(Clone, Default)]
pub struct WebSocketClient(pub(crate) Arc<ClientInner>);

impl WebSocketClient {
    /// A client with `Config::default()` and no callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn handlers(&self) -> &HandlerCell {
        &self.0.handlers
    }

    handler_setters!();

    fn options(&self) -> std::sync::MutexGuard<'_, Options> {
        self.0.options.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the protocol configuration (limits, timeouts, heartbeat).
    pub fn config(&self, config: Config) -> &Self {
        self.options().config = config;
        self
    }

    /// Offers permessage-deflate (RFC 7692); see
    /// [`DeflateConfig`](crest_proto::deflate::DeflateConfig).
    pub fn deflate(&self, deflate: crest_proto::deflate::DeflateConfig) -> &Self {
        let mut options = self.options();
        options.config = std::mem::take(&mut options.config).with_deflate(deflate);
        self
    }

    /// Offers a subprotocol; call once per protocol, most preferred first.
    pub fn protocol(&self, protocol: impl Into<String>) -> &Self {
        self.options().protocols.push(protocol.into());
        self
    }

    /// Adds a request header (`Origin`, `Authorization`, ...).
    pub fn header(&self, name: impl Into<String>, value: impl Into<String>) -> &Self {
        self.options().headers.push((name.into(), value.into()));
        self
    }

    /// Sets the slow-consumer bound (see
    /// [`Settings::max_queued_bytes`](crate::Settings::max_queued_bytes)).
    pub fn max_queued_bytes(&self, n: usize) -> &Self {
        self.options().max_queued_bytes = n;
        self
    }

    /// Parses `url` and builds the opening request: what the adapter needs to
    /// connect (host and port) and to start the handshake.
    ///
    /// # Errors
    /// [`Error::Uri`] for a malformed URL, [`Error::TlsRequired`] for `wss://`.
    pub fn plan(&self, url: &str) -> Result<ClientPlan> {
        let uri = WsUri::parse(url)?;
        if uri.secure {
            return Err(Error::TlsRequired);
        }
        let options = self.options().clone();
        let mut request = uri.request();
        for p in options.protocols {
            request = request.protocol(p);
        }
        for (n, v) in options.headers {
            request = request.header(n, v);
        }
        Ok(ClientPlan {
            host: uri.host,
            port: uri.port,
            resource: uri.resource,
            request,
            config: options.config,
            max_queued_bytes: options.max_queued_bytes,
            client: self.clone(),
        })
    }
}

/// A client connection about to be opened: see [`WebSocketClient::plan`].
#[derive(Debug)]
pub struct ClientPlan {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    pub(crate) resource: String,
    /// The opening handshake request (Host, resource, subprotocols, headers).
    pub request: ClientRequest,
    /// The protocol configuration.
    pub config: Config,
    pub(crate) max_queued_bytes: usize,
    pub(crate) client: WebSocketClient,
}

impl fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClient")
            .field("handlers", &self.0.handlers)
            .field("options", &*self.options())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_only_plain_ws() {
        let c = WebSocketClient::new();
        let plan = c.plan("ws://127.0.0.1:9001/runCase?case=1").unwrap();
        assert_eq!((plan.host.as_str(), plan.port), ("127.0.0.1", 9001));
        assert!(matches!(c.plan("wss://x/"), Err(Error::TlsRequired)));
        assert!(matches!(c.plan("http://x/"), Err(Error::Uri(_))));
    }
}
