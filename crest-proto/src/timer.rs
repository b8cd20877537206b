//! Deadlines as values (the quinn-proto shape): the connection says when it
//! next needs the time (`poll_timeout`), the caller says when that time has
//! come (`handle_timeout(now)`). Nothing here reads a clock.

use std::time::Instant;

/// The timers a connection may have armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Opening handshake must finish (Config::handshake_timeout).
    Handshake,
    /// Peer must answer our Close, or (client) the server must close TCP.
    Close,
    /// Time to send the next keep-alive Ping.
    Ping,
}

const COUNT: usize = 3;

/// A deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; COUNT],
}

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.deadlines[timer as usize] = at;
    }

    /// Clears `timer` if it is due at `now`, reporting whether it was.
    pub(crate) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        match self.deadlines[timer as usize] {
            Some(at) if at <= now => {
                self.deadlines[timer as usize] = None;
                true
            }
            _ => false,
        }
    }

    /// Asked after every input: written out rather than as an iterator
    /// chain, which costs a few times more.
    #[inline]
    pub(crate) fn earliest(&self) -> Option<Instant> {
        let [a, b, c] = self.deadlines;
        earlier(earlier(a, b), c)
    }

    pub(crate) fn clear(&mut self) {
        self.deadlines = [None; COUNT];
    }
}

/// The earlier of two optional deadlines.
#[inline]
pub(crate) fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Masking keys and handshake nonces: splitmix64, seeded from
/// `Config::rng_seed` or from the OS randomness behind std's `RandomState`
/// (no extra dependency, no I/O of our own). RFC 6455 §5.3 asks that masking
/// keys be unpredictable to the script author; a per-connection secret seed
/// expanded by splitmix64 is.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        use std::hash::BuildHasher;
        Self(seed.unwrap_or_else(|| std::collections::hash_map::RandomState::new().hash_one(0x0063_7265_7374_u64)))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn mask_key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        let mut n = [0u8; 16];
        n[..8].copy_from_slice(&self.next_u64().to_ne_bytes());
        n[8..].copy_from_slice(&self.next_u64().to_ne_bytes());
        n
    }
}
