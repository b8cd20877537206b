//! Client side of the opening handshake (RFC 6455 §4.1) and `ws://` URIs (§3).

use base64::Engine as _;
use bytes::{BufMut, Bytes};

use super::{has_token, header_values, httparse_error, is_token, validate_headers, write_header};
use crate::config::Config;
use crate::error::{HandshakeError, SendError};
use crate::extension::{Extension, ExtensionOffer};

/// A parsed `ws://` or `wss://` URI (RFC 6455 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUri {
    /// `wss://`: the transport must be TLS.
    pub secure: bool,
    /// The host name or address, without IPv6 brackets.
    pub host: String,
    /// The port (80 for `ws`, 443 for `wss` unless given).
    pub port: u16,
    /// Path and query, `/` at least.
    pub resource: String,
}

/// Why a string is not a WebSocket URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The scheme is not `ws` or `wss`.
    #[error("scheme must be ws:// or wss://")]
    Scheme,
    /// No host, or a malformed one.
    #[error("missing or invalid host")]
    Host,
    /// The port is not a number from 1 to 65535.
    #[error("invalid port")]
    Port,
    /// RFC 6455 §3: fragment identifiers are not allowed.
    #[error("fragment identifiers (#) are not allowed in WebSocket URIs")]
    Fragment,
}

impl WsUri {
    /// Parses `ws://host[:port][/path][?query]` (or `wss://`).
    ///
    /// ```
    /// let uri = crest_proto::WsUri::parse("ws://[::1]:9001/chat?x=1").unwrap();
    /// assert_eq!((uri.host.as_str(), uri.port, uri.resource.as_str()), ("::1", 9001, "/chat?x=1"));
    /// ```
    ///
    /// # Errors
    /// [`UriError`] naming the part that is wrong.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let (scheme, rest) = uri.split_once("://").ok_or(UriError::Scheme)?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            _ => return Err(UriError::Scheme),
        };
        if rest.contains('#') {
            return Err(UriError::Fragment);
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UriError::Host);
        }
        let resource = match resource {
            "" => "/".to_owned(),
            r if r.starts_with('?') => format!("/{r}"),
            r => r.to_owned(),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UriError::Host)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains([' ', '[', ']']) {
            return Err(UriError::Host);
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or(UriError::Port)?,
            None if secure => 443,
            None => 80,
        };
        Ok(Self { secure, host: host.to_owned(), port, resource })
    }

    /// The `Host` header value: the port only when it is not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.secure { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// A [`ClientRequest`] for this URI.
    pub fn request(&self) -> ClientRequest {
        ClientRequest::new(self.host_header(), self.resource.clone())
    }
}

/// What a client asks for in its opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    pub(crate) host: String,
    pub(crate) resource: String,
    pub(crate) protocols: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) key: Option<[u8; 16]>,
}

impl ClientRequest {
    /// A request for `resource` (path and query) on `host` (the Host header).
    pub fn new(host: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { host: host.into(), resource: resource.into(), protocols: Vec::new(), headers: Vec::new(), key: None }
    }

    /// Offer a subprotocol (`Sec-WebSocket-Protocol`); call once per protocol,
    /// most preferred first. Each must be an HTTP token (RFC 6455 §4.1):
    /// [`Connection::client`](crate::Connection::client) refuses others.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Add a header (e.g. `Origin`, `Authorization`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Use these 16 bytes as the `Sec-WebSocket-Key` nonce instead of ones
    /// drawn from the connection's random source.
    pub fn key(mut self, key: [u8; 16]) -> Self {
        self.key = Some(key);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SendError> {
        let line_safe = |s: &str| !s.is_empty() && !s.bytes().any(|b| b < 0x21 || b == 0x7F);
        if !line_safe(&self.resource) {
            return Err(SendError::InvalidHeader("request target".into()));
        }
        // A blank Host is refused by every server (RFC 7230 §5.4).
        if self.host.trim_ascii().is_empty() {
            return Err(SendError::InvalidHeader("Host".into()));
        }
        // Each subprotocol must be a token: the server splits the header at
        // commas and trims, so anything else would offer other names.
        if !self.protocols.iter().all(|p| is_token(p)) {
            return Err(SendError::InvalidHeader("Sec-WebSocket-Protocol".into()));
        }
        let mut all = vec![("Host".to_owned(), self.host.clone())];
        all.extend(self.protocols.iter().map(|p| ("Sec-WebSocket-Protocol".to_owned(), p.clone())));
        all.extend(self.headers.iter().cloned());
        validate_headers(&all)
    }

    /// Writes the request head with base64 `key`.
    pub(crate) fn encode(&self, key: &str, extensions: &[ExtensionOffer], out: &mut Vec<u8>) {
        out.put_slice(b"GET ");
        out.put_slice(self.resource.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        write_header(out, "Host", &self.host);
        write_header(out, "Upgrade", "websocket");
        write_header(out, "Connection", "Upgrade");
        write_header(out, "Sec-WebSocket-Key", key);
        write_header(out, "Sec-WebSocket-Version", "13");
        if !self.protocols.is_empty() {
            write_header(out, "Sec-WebSocket-Protocol", &self.protocols.join(", "));
        }
        if !extensions.is_empty() {
            let offers = extensions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            write_header(out, "Sec-WebSocket-Extensions", &offers);
        }
        for (n, v) in &self.headers {
            write_header(out, n, v);
        }
        out.put_slice(b"\r\n");
    }
}

/// Base64 of a 16-byte nonce.
pub(crate) fn encode_key(nonce: [u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// What a client learned from a valid 101 response.
pub(crate) struct Accepted {
    pub(crate) len: usize,
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, Bytes)>,
    pub(crate) extension: Option<Box<dyn Extension>>,
}

/// Parses and checks a complete response head (the caller found its end).
pub(crate) fn parse_response(
    buf: &[u8],
    config: &Config,
    accept: &str,
    offered_protocols: &[String],
) -> Result<Accepted, HandshakeError> {
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HandshakeError::Http("incomplete response head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders { limit: config.max_headers })
        }
        Err(e) => return Err(httparse_error(e)),
    };
    if len > config.max_handshake_size {
        return Err(HandshakeError::HeadTooLarge { limit: config.max_handshake_size });
    }
    let status = res.code.unwrap_or(0);
    if status != 101 {
        return Err(HandshakeError::UnexpectedStatus(status));
    }
    let all = &*res.headers;
    let values = |name: &'static str| header_values(all, name);
    if !values("upgrade").any(|v| has_token(v, "websocket")) {
        return Err(HandshakeError::InvalidHeader { name: "Upgrade", expected: "websocket" });
    }
    if !values("connection").any(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::InvalidHeader { name: "Connection", expected: "upgrade" });
    }
    let mut accepts = values("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(v), None) if v.trim_ascii() == accept.as_bytes() => {}
        _ => return Err(HandshakeError::InvalidAccept),
    }
    let protocols = super::list_items(values("sec-websocket-protocol"));
    let protocol = match protocols.as_slice() {
        [] => None,
        [p] if offered_protocols.contains(p) => Some(p.clone()),
        [p] => return Err(HandshakeError::UnofferedProtocol(p.clone())),
        _ => return Err(HandshakeError::UnofferedProtocol(protocols.join(", "))),
    };
    let answered: Vec<ExtensionOffer> = values("sec-websocket-extensions")
        .map(|v| std::str::from_utf8(v).map_err(|_| HandshakeError::InvalidExtension("not UTF-8".into())))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flat_map(ExtensionOffer::parse_header)
        .collect();
    let mut extension = None;
    for ans in &answered {
        let cfg = config
            .extensions
            .iter()
            .find(|c| c.name().eq_ignore_ascii_case(&ans.name))
            .ok_or_else(|| HandshakeError::UnofferedExtension(ans.name.clone()))?;
        if extension.is_some() {
            return Err(HandshakeError::InvalidExtension("more than one extension answered".into()));
        }
        extension = Some(cfg.confirm(ans)?);
    }
    let headers = res.headers.iter().map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value))).collect();
    Ok(Accepted { len, protocol, headers, extension })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = WsUri::parse("ws://localhost:8000/ws").unwrap();
        assert_eq!((u.secure, u.host.as_str(), u.port, u.resource.as_str()), (false, "localhost", 8000, "/ws"));
        assert_eq!(u.host_header(), "localhost:8000");
        let u = WsUri::parse("WSS://example.com?x=1").unwrap();
        assert_eq!(
            (u.secure, u.port, u.resource.as_str(), u.host_header()),
            (true, 443, "/?x=1", "example.com".into())
        );
        assert_eq!(WsUri::parse("ws://[::1]/").unwrap().host_header(), "[::1]:80".replace(":80", ""));
        assert_eq!(WsUri::parse("http://a/"), Err(UriError::Scheme));
        assert_eq!(WsUri::parse("ws://a/#frag"), Err(UriError::Fragment));
        assert_eq!(WsUri::parse("ws://a:0/"), Err(UriError::Port));
        assert_eq!(WsUri::parse("ws://a:x/"), Err(UriError::Port));
        assert_eq!(WsUri::parse("ws:///"), Err(UriError::Host));
    }

    #[test]
    fn request_head() {
        let req = ClientRequest::new("server.example.com", "/chat").protocol("chat").protocol("superchat");
        let mut out = Vec::new();
        req.encode("dGhlIHNhbXBsZSBub25jZQ==", &[], &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat, superchat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(ClientRequest::new("h", "/").header("X", "a\nb").validate().is_err());
        assert!(ClientRequest::new("h", "/a b").validate().is_err());
    }

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
    }

    fn check(s: &str, offered: &[&str]) -> Result<Option<String>, HandshakeError> {
        let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
        parse_response(s.as_bytes(), &Config::default(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &offered).map(|a| a.protocol)
    }

    #[test]
    fn response_checks() {
        assert_eq!(check(&response(""), &[]), Ok(None));
        assert_eq!(check(&response("Sec-WebSocket-Protocol: chat\r\n"), &["chat"]), Ok(Some("chat".into())));
        assert_eq!(
            check(&response("Sec-WebSocket-Protocol: other\r\n"), &["chat"]),
            Err(HandshakeError::UnofferedProtocol("other".into()))
        );
        assert_eq!(
            check(&response("Sec-WebSocket-Extensions: permessage-deflate\r\n"), &[]),
            Err(HandshakeError::UnofferedExtension("permessage-deflate".into()))
        );
        assert_eq!(
            check(&response("").replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAA"), &[]),
            Err(HandshakeError::InvalidAccept)
        );
        assert_eq!(
            check(&response("").replace("101 Switching Protocols", "403 Forbidden"), &[]),
            Err(HandshakeError::UnexpectedStatus(403))
        );
        assert!(check(&response("").replace("Upgrade: websocket\r\n", ""), &[]).is_err());
    }
}
