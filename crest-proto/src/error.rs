//! Errors, split by who can act on them.
//!
//! - [`HandshakeError`]: the peer's HTTP upgrade was wrong; [`HandshakeError::status`]
//!   is the HTTP status a server answers with.
//! - [`ProtocolError`]: the peer broke RFC 6455; [`ProtocolError::close_code`] is
//!   the close code sent to it.
//! - [`SendError`]: the caller misused a command (sending after close, a
//!   126-byte ping); returned by that call, the connection is unaffected.
//! - [`Error`]: what `Event::Error` carries; wraps the first two plus timeouts.
//!
//! None of them hold an `io::Error` (this crate does no I/O), so all are
//! `Clone + Eq` and tests can compare events directly.

use crate::close::CloseCode;

/// Why a connection failed; carried by [`Event::Error`](crate::Event::Error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer violated the protocol after the handshake.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// A deadline passed.
    #[error("{0} timed out")]
    Timeout(TimeoutKind),
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The opening handshake did not complete in time.
    Handshake,
    /// The peer did not answer our Close frame in time.
    Close,
    /// Nothing arrived from the peer within the idle timeout.
    Idle,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Handshake => "opening handshake",
            Self::Close => "closing handshake",
            Self::Idle => "idle connection",
        })
    }
}

/// A bad opening handshake (RFC 6455 §4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The bytes are not a valid HTTP/1.1 message head.
    #[error("malformed HTTP: {0}")]
    Http(&'static str),
    /// The request or response head exceeded `Config::max_handshake_size`.
    #[error("HTTP head exceeds the limit of {limit} bytes")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More header lines than `Config::max_headers`.
    #[error("more than {limit} HTTP header lines")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The upgrade request's method was not GET.
    #[error("method {0} not allowed for a WebSocket upgrade, use GET")]
    MethodNotAllowed(String),
    /// The HTTP version was older than 1.1.
    #[error("HTTP/1.1 or later required")]
    HttpVersion,
    /// No Host header.
    #[error("missing Host header")]
    MissingHost,
    /// A header the handshake needs was absent or had the wrong value.
    #[error("header {name} must contain {expected}")]
    InvalidHeader {
        /// The header's name.
        name: &'static str,
        /// What it had to contain.
        expected: &'static str,
    },
    /// `Sec-WebSocket-Version` was not 13.
    #[error("unsupported Sec-WebSocket-Version {0:?}, only 13 is supported")]
    UnsupportedVersion(String),
    /// `Sec-WebSocket-Key` missing or not base64 of 16 bytes.
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes")]
    InvalidKey,
    /// The server answered with a status other than 101.
    #[error("server answered {0} instead of 101 Switching Protocols")]
    UnexpectedStatus(u16),
    /// `Sec-WebSocket-Accept` did not match the key we sent.
    #[error("Sec-WebSocket-Accept does not match the key sent")]
    InvalidAccept,
    /// The server chose a subprotocol the client did not offer.
    #[error("server chose subprotocol {0:?}, which was not offered")]
    UnofferedProtocol(String),
    /// The server answered with an extension the client did not offer.
    #[error("server answered extension {0:?}, which was not offered")]
    UnofferedExtension(String),
    /// An extension header or its parameters were malformed or unacceptable.
    #[error("invalid extension negotiation: {0}")]
    InvalidExtension(String),
    /// The peer closed the transport before the handshake completed.
    #[error("connection closed during the opening handshake")]
    Eof,
}

impl HandshakeError {
    /// The HTTP status a server answers with (a client answers nothing).
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::MethodNotAllowed(_) => 405,
            Self::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }
}

/// The peer broke RFC 6455 after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A client sent a frame without a mask (§5.1).
    #[error("unmasked frame from client")]
    UnmaskedFrame,
    /// A server sent a masked frame (§5.1).
    #[error("masked frame from server")]
    MaskedFrame,
    /// Opcode 3-7 or B-F (§5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV bits set that no negotiated extension defines (§5.2).
    #[error("reserved bits {0:#04x} set without a negotiated extension")]
    ReservedBits(u8),
    /// The 64-bit length had its most significant bit set (§5.2).
    #[error("frame length with the most significant bit set")]
    InvalidLength,
    /// A control frame with more than 125 bytes of payload (§5.5).
    #[error("control frame of {0} bytes exceeds 125")]
    ControlFrameTooLarge(u64),
    /// A control frame without FIN (§5.5).
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A continuation frame with no message to continue (§5.4).
    #[error("continuation frame with no message in progress")]
    UnexpectedContinuation,
    /// A new data frame while a fragmented message was in progress (§5.4).
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A text message or close reason that is not UTF-8 (§8.1).
    #[error("invalid UTF-8 in text message")]
    InvalidUtf8,
    /// A close reason that is not UTF-8 (§5.5.1).
    #[error("invalid UTF-8 in close reason")]
    InvalidCloseReason,
    /// A close frame body of exactly one byte (§5.5.1).
    #[error("close frame body of 1 byte")]
    InvalidCloseBody,
    /// A close code that may not appear on the wire (§7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A frame longer than `Config::max_frame_size`.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The announced size.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message longer than `Config::max_message_size`.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// The size reached.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// Data sent to us before we accepted the handshake, beyond the handshake limit.
    #[error("{0} bytes sent before the handshake completed")]
    EarlyData(usize),
    /// A negotiated extension rejected the data.
    #[error("extension: {0}")]
    Extension(String),
}

impl ProtocolError {
    /// The close code sent to the peer (RFC 6455 §7.4.1): 1007 for invalid
    /// payload data, 1009 for size limits, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCloseReason => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The caller misused a command; the connection is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is not open: the handshake has not completed, or a
    /// Close frame was already sent or received. Nothing was queued.
    #[error("connection is not open")]
    NotOpen,
    /// `accept` or `respond` without a pending request, or twice.
    #[error("no handshake request is waiting for a decision")]
    NoPendingRequest,
    /// `accept` on a plain HTTP request that is not a WebSocket upgrade.
    #[error("request is not a WebSocket upgrade; answer it with respond()")]
    NotWebSocket,
    /// `accept` chose a subprotocol that the client did not offer.
    #[error("subprotocol {0:?} was not offered by the client")]
    ProtocolNotOffered(String),
    /// A header name or value with characters that would break the HTTP head.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLarge(usize),
    /// A close code that may not be sent (RFC 6455 §7.4).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes (RFC 6455 §5.5).
    #[error("close reason of {0} bytes exceeds 123")]
    CloseReasonTooLong(usize),
    /// `send_encoded` on a client connection, whose frames must be masked.
    #[error("pre-encoded frames can only be sent by a server")]
    EncodedOnClient,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_stay_small() {
        assert!(std::mem::size_of::<Error>() <= 40, "{}", std::mem::size_of::<Error>());
        assert!(std::mem::size_of::<ProtocolError>() <= 24);
    }

    #[test]
    fn close_codes_and_statuses() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(ProtocolError::MessageTooLarge { size: 2, limit: 1 }.close_code().0, 1009);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code().0, 1002);
        assert_eq!(HandshakeError::UnsupportedVersion("8".into()).status(), 426);
        assert_eq!(HandshakeError::HeadTooLarge { limit: 1 }.status(), 431);
        assert_eq!(HandshakeError::InvalidKey.status(), 400);
    }
}
