//! The opening handshake (RFC 6455 §4): HTTP/1.1 upgrade, both sides.
//!
//! `server` parses requests and writes 101 or error responses; `client`
//! builds requests and checks the server's answer. Both parse with
//! `httparse`, so "not yet complete" is a normal state, never an error.

pub(crate) mod client;
pub(crate) mod server;

use base64::Engine as _;
use bytes::{BufMut, Bytes};
use sha1::{Digest, Sha1};

use crate::error::SendError;
use crate::extension::ExtensionOffer;

pub use client::{ClientRequest, UriError, WsUri};

/// RFC 6455 §1.3: the GUID appended to the key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2):
/// base64(SHA-1(key + GUID)).
///
/// ```
/// assert_eq!(crest_proto::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// An HTTP request head received by a server: a WebSocket upgrade, or a plain
/// request (see [`Request::is_websocket`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, Bytes)>,
    pub(crate) websocket: bool,
    pub(crate) protocols: Vec<String>,
    pub(crate) extensions: Vec<ExtensionOffer>,
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent: path and query, e.g. `/ws?room=1`.
    pub fn uri(&self) -> &str {
        &self.target
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query string without the `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// All header lines in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_ref()))
    }

    /// The first header called `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }

    /// The `Origin` header, sent by browsers (RFC 6455 §10.2); check it
    /// against the sites allowed to connect.
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// Whether this is a valid WebSocket upgrade request that may be accepted.
    /// Plain HTTP requests can only be answered with `respond`.
    pub fn is_websocket(&self) -> bool {
        self.websocket
    }

    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Extensions offered in `Sec-WebSocket-Extensions`, in order.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }
}

/// A server's decision to upgrade: the subprotocol and extra response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Accept {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Select a subprotocol; it must be one the client offered.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Add a response header (e.g. `Set-Cookie`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An HTTP response that ends the connection: a rejected upgrade, or the
/// answer to a plain HTTP request. `Content-Length` and `Connection: close`
/// are added when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Response {
    /// A response with `status` and an empty body.
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Bytes::new() }
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    pub(crate) fn validate(&self) -> Result<(), SendError> {
        if !(100..=999).contains(&self.status) {
            return Err(SendError::InvalidHeader(format!("status {}", self.status)));
        }
        validate_headers(&self.headers)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        write_status_line(out, self.status);
        for (n, v) in &self.headers {
            write_header(out, n, v);
        }
        write_header(out, "Content-Length", &self.body.len().to_string());
        write_header(out, "Connection", "close");
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }
}

pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.to_string().as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason_phrase(status).as_bytes());
    out.put_slice(b"\r\n");
}

pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// Rejects header names that are not HTTP tokens and values with control
/// characters: either could split or forge the response head.
pub(crate) fn validate_headers(headers: &[(String, String)]) -> Result<(), SendError> {
    for (name, value) in headers {
        let name_ok = is_token(name);
        let value_ok = value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7F));
        if !name_ok || !value_ok {
            return Err(SendError::InvalidHeader(name.clone()));
        }
    }
    Ok(())
}

/// Whether `s` is an HTTP token (RFC 7230 §3.2.6), as header names and the
/// subprotocols of `Sec-WebSocket-Protocol` (RFC 6455 §4.1) must be.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Whether a comma-separated header value contains `token`, ignoring ASCII
/// case and optional whitespace (RFC 7230 §7 list syntax).
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The values of every header line called `name` (case-insensitive).
pub(crate) fn header_values<'a, 'b>(
    headers: &'a [httparse::Header<'b>],
    name: &'a str,
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

/// Splits comma-separated header values into trimmed, non-empty items.
pub(crate) fn list_items<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|item| String::from_utf8_lossy(item.trim_ascii()).into_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Finds the end of an HTTP head (the blank line), scanning from `from`.
/// Returns the index just past it. Tracking `from` keeps a head that arrives
/// one byte at a time linear to scan, instead of re-parsing it at every byte.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            Some(b'\r') if nl + 2 >= buf.len() => return None,
            None => return None,
            _ => i = nl + 1,
        }
    }
    None
}

pub(crate) fn httparse_error(e: httparse::Error) -> crate::error::HandshakeError {
    use crate::error::HandshakeError::Http;
    match e {
        httparse::Error::HeaderName => Http("invalid header name"),
        httparse::Error::HeaderValue => Http("invalid header value"),
        httparse::Error::NewLine => Http("invalid line ending"),
        httparse::Error::Status => Http("invalid status line"),
        httparse::Error::Token => Http("invalid token"),
        httparse::Error::Version => Http("invalid HTTP version"),
        // TooManyHeaders is mapped by the callers, which know the limit.
        _ => Http("malformed HTTP head"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key_vector() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn token_lists() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"UPGRADE", "upgrade"));
        assert!(!has_token(b"upgraded", "upgrade"));
        assert_eq!(list_items([&b"chat, , superchat"[..], b"x"].into_iter()), ["chat", "superchat", "x"]);
    }

    #[test]
    fn head_end_found_incrementally() {
        // Dribbled one byte at a time, scanning only from where the last scan stopped.
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        let end = head.len() - 4;
        let mut scanned = 0;
        let mut found = None;
        for len in 1..=head.len() {
            if let Some(at) = find_head_end(&head[..len], scanned) {
                found = Some((len, at));
                break;
            }
            scanned = len;
        }
        assert_eq!(found, Some((end, end)));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nx", 0), Some(16));
    }

    #[test]
    fn header_injection_rejected() {
        assert!(validate_headers(&[("X-Ok".into(), "fine value".into())]).is_ok());
        assert!(validate_headers(&[("X-Bad".into(), "a\r\nSet-Cookie: x".into())]).is_err());
        assert!(validate_headers(&[("Bad Name".into(), "v".into())]).is_err());
    }
}
