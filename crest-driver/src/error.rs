//! [`Error`]: what the adapters report, split from crest-proto's by who acts.

use std::io;

/// An error of a WebSocket connection driven by an adapter.
///
/// - [`Error::Io`]: the transport failed (reset, broken pipe, ...).
/// - [`Error::Protocol`]: the peer broke RFC 6455, the opening handshake
///   failed, or a timer expired; the right Close frame or HTTP error was
///   already sent by crest-proto.
/// - [`Error::Send`], [`Error::Closed`], [`Error::QueueFull`]: a command on a
///   [`Conn`](crate::Conn) was refused; the connection is unaffected except
///   for `QueueFull`, which disconnects the slow consumer (see
///   [`Settings::max_queued_bytes`](crate::Settings::max_queued_bytes)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol, the handshake failed, or a deadline passed.
    #[error(transparent)]
    Protocol(#[from] crest_proto::Error),
    /// A command was invalid (a close code that may not be sent, a reason or
    /// control payload too long, a subprotocol the client did not offer).
    #[error(transparent)]
    Send(#[from] crest_proto::SendError),
    /// The connection is not open (not yet, or any more): nothing was queued.
    #[error("connection is closed")]
    Closed,
    /// The peer does not read fast enough: the bytes already queued for it
    /// plus this message exceed `max_queued_bytes`. The message was not
    /// queued and the connection is being dropped.
    #[error("slow consumer: {queued} bytes queued, {len} more would exceed the limit of {limit}")]
    QueueFull {
        /// Bytes queued when the message was refused.
        queued: usize,
        /// The refused message's size.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A client URL that is not `ws://host[:port][/path]`.
    #[error("invalid WebSocket URL: {0}")]
    Uri(#[from] crest_proto::UriError),
    /// `wss://` needs TLS, which this adapter does not bring: connect the TLS
    /// stream yourself and run the WebSocket over it.
    #[error("wss:// needs a TLS stream: open one and use WebSocket::client over it")]
    TlsRequired,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crest_proto::HandshakeError> for Error {
    fn from(e: crest_proto::HandshakeError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<crest_proto::ProtocolError> for Error {
    fn from(e: crest_proto::ProtocolError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Closed => io::Error::new(io::ErrorKind::NotConnected, e),
            other => io::Error::other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<Error>() <= 48, "{}", std::mem::size_of::<Error>());
    }

    #[test]
    fn messages_name_the_problem() {
        let e = Error::QueueFull { queued: 10, len: 5, limit: 12 };
        assert_eq!(e.to_string(), "slow consumer: 10 bytes queued, 5 more would exceed the limit of 12");
        assert_eq!(Error::Closed.to_string(), "connection is closed");
    }
}
