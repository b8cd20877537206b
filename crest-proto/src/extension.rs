//! The extension point: RSV bits and `Sec-WebSocket-Extensions` (RFC 6455 §9).
//!
//! An extension has two halves. [`ExtensionConfig`] lives in
//! [`Config::extensions`](crate::Config) and negotiates: a client puts its
//! [`offer`](ExtensionConfig::offer) in the request and checks the server's
//! answer with [`confirm`](ExtensionConfig::confirm); a server picks the first
//! offer it can [`accept`](ExtensionConfig::accept). Negotiation yields an
//! [`Extension`], owned by the connection, that transforms whole messages:
//! it may set the RSV bits it declares on a message's first frame.
//! permessage-deflate (RFC 7692) is one such pair.

use std::fmt;

use bytes::Bytes;

use crate::error::{HandshakeError, ProtocolError};

/// One element of a `Sec-WebSocket-Extensions` header: a name and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; a value is `None` for a bare token.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// Parses one header value into its comma-separated elements. Quoted
    /// parameter values are unquoted. Elements with an empty name are skipped.
    pub fn parse_header(value: &str) -> Vec<Self> {
        let mut out = Vec::new();
        for element in split_unquoted(value, ',') {
            let mut parts = split_unquoted(element, ';').into_iter();
            let name = parts.next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let params = parts
                .filter_map(|p| {
                    let p = p.trim();
                    if p.is_empty() {
                        return None;
                    }
                    Some(match p.split_once('=') {
                        Some((k, v)) => (k.trim().to_owned(), Some(v.trim().trim_matches('"').to_owned())),
                        None => (p.to_owned(), None),
                    })
                })
                .collect();
            out.push(Self { name: name.to_owned(), params });
        }
        out
    }
}

impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, "; {k}={v}")?,
                None => write!(f, "; {k}")?,
            }
        }
        Ok(())
    }
}

fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The negotiating half of an extension, shared by all connections through
/// [`Config::extensions`](crate::Config).
pub trait ExtensionConfig: fmt::Debug + Send + Sync {
    /// The extension token, e.g. `permessage-deflate`.
    fn name(&self) -> &str;

    /// Client: the offer to send in `Sec-WebSocket-Extensions`.
    fn offer(&self) -> ExtensionOffer;

    /// Server: accept one of the client's offers (all have this extension's
    /// name), answering with the response parameters and the extension state.
    /// `None` declines this offer; the next one is tried.
    fn accept(&self, offer: &ExtensionOffer) -> Option<(ExtensionOffer, Box<dyn Extension>)>;

    /// Client: check the server's answer and build the extension state.
    ///
    /// # Errors
    /// [`HandshakeError::InvalidExtension`] when the answer is unacceptable.
    fn confirm(&self, response: &ExtensionOffer) -> Result<Box<dyn Extension>, HandshakeError>;
}

/// The data half of a negotiated extension, owned by one connection.
pub trait Extension: fmt::Debug + Send {
    /// The RSV bits (`frame::RSV1 | ...`) this extension may set on the first
    /// frame of a data message. Any other RSV bit closes with 1002.
    fn rsv_bits(&self) -> u8;

    /// Decodes a complete received message whose first frame carried `rsv`.
    /// The result must not exceed `max_size` bytes; check while producing it.
    ///
    /// # Errors
    /// A [`ProtocolError`] to fail the connection with its close code.
    fn decode(&mut self, rsv: u8, payload: Bytes, max_size: usize) -> Result<Bytes, ProtocolError>;

    /// Encodes an outgoing message payload, returning the RSV bits for its
    /// first frame and the payload to frame.
    fn encode(&mut self, payload: Bytes) -> (u8, Bytes);

    /// A key naming this extension's encoding when it depends only on the
    /// message and the negotiated parameters, never on earlier messages:
    /// connections whose extensions return the same key encode a message to
    /// the same bytes, so a broadcast ([`EncodedMessage`](crate::EncodedMessage))
    /// encodes it once for all of them. `None` (the default): the encoding
    /// has per-connection state, and each connection encodes for itself.
    fn shared_encoding(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offers_with_params_and_quotes() {
        let offers = ExtensionOffer::parse_header(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\", x-foo , ",
        );
        assert_eq!(offers.len(), 2);
        assert_eq!(offers[0].name, "permessage-deflate");
        assert_eq!(
            offers[0].params,
            vec![("client_max_window_bits".into(), None), ("server_max_window_bits".into(), Some("10".into()))]
        );
        assert_eq!(offers[1].name, "x-foo");
        assert_eq!(offers[0].to_string(), "permessage-deflate; client_max_window_bits; server_max_window_bits=10");
    }
}
