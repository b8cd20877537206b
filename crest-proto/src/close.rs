//! Close codes (RFC 6455 §7.4) and the close frame body (§5.5.1).

use std::fmt;

use crate::text::Text;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// A newtype rather than an enum: any `u16` can arrive on the wire, and the
/// validity rules are ranges, not a closed list. The named constants cover
/// the codes defined by RFC 6455 and registered with IANA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure; the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint cannot accept this kind of data.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: reserved; reports that a Close frame carried no status code. Never sent.
    pub const NO_STATUS_RECEIVED: Self = Self(1005);
    /// 1006: reserved; reports that the connection closed without a Close frame. Never sent.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a message's data did not match its type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: reserved; reports a TLS handshake failure. Never sent.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether this code may appear in a Close frame on the wire
    /// (RFC 6455 §7.4.1, §7.4.2): 1000-1003, 1007-1014 and 3000-4999.
    ///
    /// 0-999 are unused, 1004-1006 and 1015 are reserved for reporting only,
    /// 1016-2999 are reserved for future protocol revisions. The same set is
    /// what this crate accepts from a peer and what it lets a caller send.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// RFC 6455 §5.5: a Close frame's payload, like every control frame's, is at
/// most 125 bytes, so the reason is at most 125 - 2 = 123 bytes.
pub const MAX_CLOSE_REASON: usize = 123;

/// A close code and reason: what a Close frame carries, and how a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The UTF-8 reason, at most [`MAX_CLOSE_REASON`] bytes on the wire.
    pub reason: Text,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<Text>) -> Self {
        Self { code, reason: reason.into() }
    }

    /// How a connection that ended without any Close frame is reported (1006).
    pub(crate) fn abnormal() -> Self {
        Self::new(CloseCode::ABNORMAL, Text::default())
    }
}
