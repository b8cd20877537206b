//! [`Config`]: every limit and timer in one place, with defaults and reasons.

use std::sync::Arc;
use std::time::Duration;

use crate::extension::ExtensionConfig;

/// Limits, timers and switches for one connection.
///
/// Every limit is checked *before* memory is allocated for what it limits:
/// a frame header announcing 2^63 bytes allocates nothing.
///
/// Not `#[non_exhaustive]`, so that the idiomatic
/// `Config { max_message_size: 1 << 20, ..Config::default() }` works; always
/// write it with `..Config::default()` and new fields will not break you.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest HTTP request or response head, in bytes. Default 16 KiB:
    /// browsers send well under 4 KiB, and cookies rarely push past 8 KiB.
    /// Beyond it a server answers 431.
    pub max_handshake_size: usize,
    /// Most header lines in the HTTP head. Default 64 (browsers send ~15).
    pub max_headers: usize,
    /// Largest single frame payload accepted, in bytes. Default 16 MiB.
    /// A larger frame closes the connection with 1009.
    pub max_frame_size: usize,
    /// Largest message (all fragments together) accepted, in bytes.
    /// Default 64 MiB; a larger message closes the connection with 1009
    /// as soon as a frame header announces it, before it is buffered.
    /// Lower it for servers facing untrusted clients.
    pub max_message_size: usize,
    /// Outgoing messages larger than this are split into frames of at most
    /// this many payload bytes. Default 16 MiB, the common receive limit of
    /// other libraries. Must be at least 1.
    pub max_send_frame_size: usize,
    /// Answer every Ping with a Pong carrying the same payload (RFC 6455
    /// §5.5.2). Default true. Pings are reported as events either way.
    pub auto_pong: bool,
    /// Time allowed for the opening handshake, from the connection's creation
    /// until a server accepts or a client gets its 101. Default 10 s: a peer
    /// that dribbles a request one byte at a time cannot hold a slot forever.
    pub handshake_timeout: Option<Duration>,
    /// Time allowed for the peer to answer our Close frame, and for a server
    /// to close TCP after a completed closing handshake (clients wait for the
    /// server to close first, RFC 6455 §7.1.1). Default 5 s.
    pub close_timeout: Option<Duration>,
    /// Send a Ping after this long without sending a Ping. Default none.
    pub ping_interval: Option<Duration>,
    /// Fail the connection (close 1001) when nothing at all has arrived from
    /// the peer for this long. Default none. With `ping_interval` set below
    /// it, a live peer's Pongs keep the connection open.
    pub idle_timeout: Option<Duration>,
    /// Seed for masking keys and `Sec-WebSocket-Key` nonces. Default `None`:
    /// seeded from the operating system's randomness (through std's
    /// `RandomState`). Set it only for reproducible tests.
    pub rng_seed: Option<u64>,
    /// Extensions offered (client) or accepted (server), in order of
    /// preference; see [`ExtensionConfig`]. Default none: compression costs
    /// CPU and (per connection, while in use) up to ~300 KiB, so it is
    /// opt-in. Add permessage-deflate (RFC 7692) with
    /// [`Config::with_deflate`].
    pub extensions: Vec<Arc<dyn ExtensionConfig>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_handshake_size: 16 * 1024,
            max_headers: 64,
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_send_frame_size: 16 << 20,
            auto_pong: true,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Some(Duration::from_secs(5)),
            ping_interval: None,
            idle_timeout: None,
            rng_seed: None,
            extensions: Vec::new(),
        }
    }
}
