//! Server side of the opening handshake (RFC 6455 §4.2).

use base64::Engine as _;
use bytes::{BufMut, Bytes};

use super::{has_token, header_values, httparse_error, list_items, write_header, write_status_line, Request, Response};
use crate::config::Config;
use crate::error::HandshakeError;
use crate::extension::ExtensionOffer;

/// What the server keeps of a parsed upgrade request until the caller decides.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) key: String,
    pub(crate) websocket: bool,
    pub(crate) protocols: Vec<String>,
    pub(crate) extensions: Vec<ExtensionOffer>,
}

/// How many leading bytes [`check_request_start`] looks at.
const START_CHECKED: usize = 32;

/// Checks that `buf`, the bytes received so far before the head's end, can
/// still be an HTTP request: its request line starts with a method token
/// (RFC 9110 §9.1). Bytes that are not HTTP at all (a TLS ClientHello sent
/// to a plain port, binary garbage) are then answered with 400 at once,
/// instead of waiting for a head end that may never come.
///
/// Looks at the first [`START_CHECKED`] bytes only, whichever of them have
/// arrived: a pure function of a prefix that fails for every longer prefix
/// once it fails, so the verdict does not depend on how input was split.
pub(crate) fn check_request_start(buf: &[u8]) -> Result<(), HandshakeError> {
    let start = &buf[..buf.len().min(START_CHECKED)];
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let start = &start[start.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(start.len())..];
    let method = start.split(|&b| b == b' ').next().unwrap_or_default();
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let empty_method = method.is_empty() && !start.is_empty();
    if empty_method || !method.iter().all(tchar) {
        return Err(HandshakeError::Http("not an HTTP request"));
    }
    Ok(())
}

/// Parses a complete request head `buf` (the caller found its end).
/// Returns the request, what the server keeps of it, and the head's length.
pub(crate) fn parse_request(buf: &[u8], config: &Config) -> Result<(Request, Pending, usize), HandshakeError> {
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HandshakeError::Http("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders { limit: config.max_headers })
        }
        Err(e) => return Err(httparse_error(e)),
    };
    if len > config.max_handshake_size {
        return Err(HandshakeError::HeadTooLarge { limit: config.max_handshake_size });
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let all = &*req.headers;
    let values = |name: &'static str| header_values(all, name);
    let websocket = values("upgrade").any(|v| has_token(v, "websocket"));
    let (protocols, extensions) = if websocket {
        let exts = values("sec-websocket-extensions")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(ExtensionOffer::parse_header)
            .collect();
        (list_items(values("sec-websocket-protocol")), exts)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut key = String::new();
    if websocket {
        if method != "GET" {
            return Err(HandshakeError::MethodNotAllowed(method));
        }
        if req.version != Some(1) {
            return Err(HandshakeError::HttpVersion);
        }
        if values("host").next().is_none_or(|v| v.trim_ascii().is_empty()) {
            return Err(HandshakeError::MissingHost);
        }
        if !values("connection").any(|v| has_token(v, "upgrade")) {
            return Err(HandshakeError::InvalidHeader { name: "Connection", expected: "upgrade" });
        }
        let mut versions = values("sec-websocket-version");
        match (versions.next(), versions.next()) {
            (Some(v), None) if v.trim_ascii() == b"13" => {}
            (v, _) => {
                let v = v.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                return Err(HandshakeError::UnsupportedVersion(v));
            }
        }
        let mut keys = values("sec-websocket-key");
        let (Some(k), None) = (keys.next(), keys.next()) else {
            return Err(HandshakeError::InvalidKey);
        };
        let k = k.trim_ascii();
        let decoded = base64::engine::general_purpose::STANDARD.decode(k).map_err(|_| HandshakeError::InvalidKey)?;
        if decoded.len() != 16 {
            return Err(HandshakeError::InvalidKey);
        }
        key = String::from_utf8_lossy(k).into_owned();
    }
    let headers = req.headers.iter().map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value))).collect::<Vec<_>>();
    let request =
        Request { method, target, headers, websocket, protocols: protocols.clone(), extensions: extensions.clone() };
    Ok((request, Pending { key, websocket, protocols, extensions }, len))
}

/// Writes the 101 response (RFC 6455 §4.2.2 step 5).
pub(crate) fn write_switching_protocols(
    out: &mut Vec<u8>,
    key: &str,
    protocol: Option<&str>,
    extension: Option<&str>,
    headers: &[(String, String)],
) {
    write_status_line(out, 101);
    write_header(out, "Upgrade", "websocket");
    write_header(out, "Connection", "Upgrade");
    write_header(out, "Sec-WebSocket-Accept", &super::accept_key(key.as_bytes()));
    if let Some(p) = protocol {
        write_header(out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extension {
        write_header(out, "Sec-WebSocket-Extensions", e);
    }
    for (n, v) in headers {
        write_header(out, n, v);
    }
    out.put_slice(b"\r\n");
}

/// The response for a handshake the server refuses on its own.
pub(crate) fn error_response(err: &HandshakeError) -> Response {
    let mut r =
        Response::new(err.status()).header("Content-Type", "text/plain; charset=utf-8").body(format!("{err}\n"));
    match err {
        HandshakeError::UnsupportedVersion(_) => r = r.header("Sec-WebSocket-Version", "13"),
        HandshakeError::MethodNotAllowed(_) => r = r.header("Allow", "GET"),
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(s: &str) -> Result<(Request, Pending, usize), HandshakeError> {
        parse_request(s.as_bytes(), &Config::default())
    }

    #[test]
    fn rfc_request_parses() {
        let (req, pending, len) = parse(RFC_REQUEST).unwrap();
        assert_eq!(len, RFC_REQUEST.len());
        assert!(req.is_websocket());
        assert_eq!((req.path(), req.query()), ("/chat", Some("room=1")));
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.protocols(), ["chat", "superchat"]);
        assert_eq!(pending.key, "dGhlIHNhbXBsZSBub25jZQ==");
        let mut out = Vec::new();
        write_switching_protocols(&mut out, &pending.key, Some("chat"), None, &[]);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
    }

    /// One named test per malformed request, with the error and HTTP status.
    macro_rules! bad_requests {
        ($($name:ident: ($from:expr, $to:expr) => $err:expr, $status:expr;)*) => {$(
            #[test]
            fn $name() {
                let err = parse(&RFC_REQUEST.replace($from, $to)).unwrap_err();
                assert_eq!(err, $err);
                assert_eq!(err.status(), $status);
            }
        )*};
    }

    bad_requests! {
        rejects_post: ("GET ", "POST ") => HandshakeError::MethodNotAllowed("POST".into()), 405;
        rejects_http10: ("HTTP/1.1", "HTTP/1.0") => HandshakeError::HttpVersion, 400;
        rejects_missing_host: ("Host: server.example.com\r\n", "") => HandshakeError::MissingHost, 400;
        rejects_connection_without_upgrade: ("Connection: Upgrade", "Connection: keep-alive")
            => HandshakeError::InvalidHeader { name: "Connection", expected: "upgrade" }, 400;
        rejects_version_8: ("Version: 13", "Version: 8") => HandshakeError::UnsupportedVersion("8".into()), 426;
        rejects_missing_version: ("Sec-WebSocket-Version: 13\r\n", "")
            => HandshakeError::UnsupportedVersion(String::new()), 426;
        rejects_short_key: ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==") => HandshakeError::InvalidKey, 400;
        rejects_non_base64_key: ("dGhlIHNhbXBsZSBub25jZQ==", "!!!!") => HandshakeError::InvalidKey, 400;
        rejects_missing_key: ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "") => HandshakeError::InvalidKey, 400;
    }

    #[test]
    fn bytes_that_are_not_http_are_refused_before_the_head_ends() {
        let tls_client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        for bad in [&tls_client_hello[..], b"\x00\xff garbage", b" GET / HTTP/1.1", b"\r\nGE\x01"] {
            for n in 1..=bad.len() {
                let prefix = &bad[..n];
                let verdict = check_request_start(prefix);
                // Once a prefix fails, every longer one does.
                if verdict.is_err() {
                    assert!(bad[n..].is_empty() || check_request_start(&bad[..n + 1]).is_err());
                }
            }
            assert_eq!(check_request_start(bad), Err(HandshakeError::Http("not an HTTP request")), "{bad:?}");
        }
        for good in [RFC_REQUEST.as_bytes(), b"G", b"GET", b"\r\nGET / HTTP/1.1", b"", b"\r\n", b"M-SEARCH *"] {
            assert_eq!(check_request_start(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn case_insensitive_upgrade_and_connection() {
        let s = RFC_REQUEST
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Upgrade\r\nSec", "keep-alive, UPGRADE\r\nSec");
        assert!(parse(&s).unwrap().0.is_websocket());
    }

    #[test]
    fn plain_request_is_not_websocket() {
        let (req, pending, _) = parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(!req.is_websocket() && !pending.websocket);
        // A POST without Upgrade is a plain request too: the caller answers it.
        assert!(!parse("POST /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().0.is_websocket());
    }

    #[test]
    fn too_many_headers() {
        let config = Config { max_headers: 2, ..Config::default() };
        let err = parse_request(RFC_REQUEST.as_bytes(), &config).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders { limit: 2 });
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn error_responses_carry_required_headers() {
        let mut out = Vec::new();
        error_response(&HandshakeError::UnsupportedVersion("8".into())).encode(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{text}");
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("Connection: close\r\n"));
    }
}
