//! Connection states (RFC 6455 §4, §7) and the one function that changes them.
//!
//! ```text
//!              handshake ok                 close()
//!  Connecting ──────────────▶ Open ─────────────────────▶ LocalClosing
//!      │                       │  peer's Close: echo it        │ peer's Close,
//!      │ bad handshake,        │  (RFC 6455 §5.5.1)            │ EOF, timeout
//!      │ reject, EOF, timeout  ▼                               ▼
//!      └──────────────────▶ Closed ◀───────────────────────────┘
//!                              ▲ protocol error, EOF, idle timeout (from Open)
//! ```
//!
//! A Close from the peer is echoed at once, so the state the RFC calls "the
//! closing handshake is started by the peer" completes in the same call and
//! needs no state of its own.

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// We sent a Close frame and wait for the peer's; received messages are
    /// still reported, nothing more is sent.
    LocalClosing,
    /// Nothing more is received or sent (but output already queued).
    Closed,
}

impl State {
    /// Moves `self` to `next`, checking that the move is on the diagram.
    pub(crate) fn transition(&mut self, next: State) {
        use State::*;
        let allowed = matches!(
            (*self, next),
            (Connecting, Open) | (Open, LocalClosing) | (Connecting | Open | LocalClosing, Closed)
        );
        debug_assert!(allowed, "illegal transition {self:?} -> {next:?}");
        if allowed {
            *self = next;
        }
    }
}

/// Which side of the connection we are (RFC 6455 §5.1: clients mask, servers don't).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We opened the connection.
    Client,
    /// We accepted the connection.
    Server,
}
