//! [`Event`]: what a connection reports, drained with `poll_event`.

use crate::close::CloseFrame;
use crate::error::Error;
use crate::handshake::Request;
use crate::payload::Payload;
use crate::text::Text;

/// Something that happened on a connection, in the order it happened.
///
/// RFC obligations are met before the event is reported: the Pong for a
/// Ping, the Close echo, the HTTP error for a bad handshake are already
/// queued for `poll_transmit`. [`Event::Closed`] is always the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Server: an HTTP request arrived. Decide with
    /// [`accept`](crate::Connection::accept) (WebSocket upgrades only) or
    /// [`respond`](crate::Connection::respond); until then nothing after the
    /// request head is processed.
    Request(Box<Request>),
    /// The opening handshake completed: messages may flow.
    Open,
    /// A complete text message.
    Text(Text),
    /// A complete binary message.
    Binary(Payload),
    /// A Ping arrived (its Pong is already queued when `auto_pong` is on).
    Ping(Payload),
    /// A Pong arrived.
    Pong(Payload),
    /// The connection failed; a Close frame with
    /// [`ProtocolError::close_code`](crate::ProtocolError::close_code), or an
    /// HTTP error response, is already queued. [`Event::Closed`] follows.
    Error(Error),
    /// The connection is closed; the last event. The frame is the peer's
    /// close code and reason for a completed closing handshake (1005 when its
    /// Close frame had no code), the code we sent when we failed the
    /// connection, or 1006 (abnormal closure) when the transport ended or a
    /// timer expired without a closing handshake.
    Closed(CloseFrame),
}
