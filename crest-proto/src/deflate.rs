//! permessage-deflate (RFC 7692): negotiation and per-message compression.
//!
//! Add it to a [`Config`] with [`Config::with_deflate`]; a client then offers
//! it and a server accepts the first acceptable offer. Compressed messages
//! carry RSV1 on their first frame; control frames are never compressed.
//!
//! ```
//! use crest_proto::{deflate::DeflateConfig, Config};
//!
//! let config = Config::default().with_deflate(DeflateConfig { level: 3, ..DeflateConfig::default() });
//! assert_eq!(config.extensions.len(), 1);
//! ```
//!
//! ## Backend
//!
//! [flate2](https://docs.rs/flate2) with its `zlib-rs` backend (pure Rust, a
//! port of zlib, no C compiler needed). Its default backend, miniz_oxide,
//! cannot set the LZ77 window size, so it could honour neither
//! `server_max_window_bits` nor `client_max_window_bits`, both of which
//! browsers and Autobahn negotiate; zlib-rs can. It is also faster, measured
//! on the development machine (2 cores, release build, one message at a
//! time with a reset in between, MB/s of uncompressed data):
//!
//! | data, level        | zlib-rs deflate / inflate | miniz_oxide deflate / inflate |
//! |--------------------|---------------------------|-------------------------------|
//! | 1 KiB JSON, 1      | 261 / 1157                | 122 / 302                     |
//! | 1 KiB JSON, 6      | 109 / 579                 | 92 / 310                      |
//! | 64 KiB text, 1     | 212 / 471                 | 129 / 237                     |
//! | 64 KiB text, 6     | 58 / 577                  | 21 / 365                      |
//!
//! Only the `zlib-rs` feature of flate2 is enabled (no default features:
//! no miniz_oxide, no C zlib).
//!
//! ## Window bits 8
//!
//! zlib (and zlib-rs, which follows it) cannot produce a raw deflate stream
//! with an 8-bit (256-byte) window: it refuses `windowBits = 8` for raw
//! streams. RFC 7692 still allows a peer to ask for 8. Rather than decline
//! (losing compression in the other direction too) or silently use 9 bits
//! (which the peer may fail to inflate), a compressor held to 8 bits emits
//! stored (uncompressed) deflate blocks: a valid stream that refers to no
//! earlier byte, hence fits any window. Inflating is unaffected: the
//! inflater always uses a 15-bit window, which accepts streams made with any
//! smaller one.
//!
//! ## Memory
//!
//! The compressor and the inflater are created on first use, so a connection
//! that never sends or receives a compressed message costs nothing extra. A
//! compressor at 15 window bits holds about 256 KiB, the inflater about
//! 40 KiB; without context takeover they are reset (not freed) after each
//! message. Lower `*_max_window_bits` to shrink the compressor.
//!
//! ## Broadcast
//!
//! With `server_no_context_takeover` negotiated, every message is compressed
//! on its own, so a server can compress a broadcast once and send the same
//! frame to every connection that negotiated the same window and level (see
//! [`Extension::shared_encoding`]). With context takeover each connection's
//! compressor depends on what it sent before, so a broadcast is compressed
//! once per connection.

use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::config::Config;
use crate::error::{HandshakeError, ProtocolError};
use crate::extension::{Extension, ExtensionConfig, ExtensionOffer};
use crate::frame::RSV1;

/// The extension token (RFC 7692 §7).
pub const NAME: &str = "permessage-deflate";

/// The empty stored block a sync flush ends with, removed before sending and
/// appended before inflating (RFC 7692 §7.2.1, §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest and largest LZ77 window sizes, as base-2 logarithms (RFC 7692 §7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;
/// See [`MIN_WINDOW_BITS`].
pub const MAX_WINDOW_BITS: u8 = 15;

/// Output grows in steps of at least this many bytes while inflating (and
/// otherwise doubles, from four times the compressed size).
const INFLATE_STEP: usize = 1024;

/// permessage-deflate settings, for either side; add with [`Config::with_deflate`].
///
/// Parameter names follow RFC 7692 §7.1: `server_*` limits what the server
/// sends, `client_*` what the client sends. A server uses its own half as
/// limits it imposes on itself and the other half as requests to the client;
/// a client does the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Compression level, 0 (store) to 9 (smallest). Default 6, zlib's (and
    /// browsers') default. Measured on 1 KiB JSON messages with context
    /// takeover: level 6 compresses 6.0x at ~30 MB/s, level 3 5.8x at
    /// ~50 MB/s, level 1 4.7x at ~260 MB/s: choose 1 for CPU-bound servers.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1
    /// clear): deflate's few bytes of framing outweigh the gain on tiny
    /// messages. Default 64.
    pub threshold: usize,
    /// The server compresses every message on its own (RFC 7692 §7.1.1.1).
    /// A server with `true` always announces it, which costs some ratio but
    /// lets a broadcast be compressed once for all recipients; a client with
    /// `true` asks for it. Default false.
    pub server_no_context_takeover: bool,
    /// The client compresses every message on its own (§7.1.1.2). A client
    /// with `true` announces it; a server with `true` requires it. Default false.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (8-15, as log2) the server compresses with
    /// (§7.1.2.1). A server never uses more; a client below 15 asks for it.
    /// Default 15 (32 KiB).
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (8-15) the client compresses with (§7.1.2.2). A
    /// client never uses more; a server below 15 asks for it when the client
    /// allows. Default 15.
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 6,
            threshold: 64,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl Config {
    /// Adds permessage-deflate to [`extensions`](Config::extensions): a client
    /// offers it, a server accepts it when offered.
    #[must_use]
    pub fn with_deflate(mut self, deflate: DeflateConfig) -> Self {
        self.extensions.push(std::sync::Arc::new(deflate));
        self
    }
}

/// The parameters of one offer or response, validated (RFC 7692 §7.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `None`: absent.
    server_max_window_bits: Option<u8>,
    /// `None`: absent; `Some(None)`: present without a value (offers only).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Parses and validates; `is_offer` allows a bare `client_max_window_bits`.
    fn parse(offer: &ExtensionOffer, is_offer: bool) -> Result<Self, String> {
        let mut p = Self::default();
        let mut seen = [false; 4];
        for (name, value) in &offer.params {
            let index = match name.as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                other => return Err(format!("unknown parameter {other:?}")),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("duplicate parameter {name:?}"));
            }
            match (index, value) {
                (0, None) => p.server_no_context_takeover = true,
                (1, None) => p.client_no_context_takeover = true,
                (0 | 1, Some(_)) => return Err(format!("parameter {name:?} takes no value")),
                (2, Some(v)) => p.server_max_window_bits = Some(window_bits(name, v)?),
                (3, Some(v)) => p.client_max_window_bits = Some(Some(window_bits(name, v)?)),
                (3, None) if is_offer => p.client_max_window_bits = Some(None),
                _ => return Err(format!("parameter {name:?} needs a value")),
            }
        }
        Ok(p)
    }

    fn to_offer(self) -> ExtensionOffer {
        let mut params = Vec::new();
        let mut flag = |on: bool, name: &str| {
            if on {
                params.push((name.to_owned(), None));
            }
        };
        flag(self.server_no_context_takeover, "server_no_context_takeover");
        flag(self.client_no_context_takeover, "client_no_context_takeover");
        if let Some(bits) = self.server_max_window_bits {
            params.push(("server_max_window_bits".to_owned(), Some(bits.to_string())));
        }
        if let Some(bits) = self.client_max_window_bits {
            params.push(("client_max_window_bits".to_owned(), bits.map(|b| b.to_string())));
        }
        ExtensionOffer { name: NAME.to_owned(), params }
    }
}

/// A window-bits value: 1*DIGIT without leading zero, 8 to 15 (§7.1.2).
fn window_bits(name: &str, value: &str) -> Result<u8, String> {
    let digits = !value.is_empty() && value.len() <= 2 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u8>() {
        Ok(bits) if digits && !value.starts_with('0') && (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) => {
            Ok(bits)
        }
        _ => Err(format!("parameter {name:?} has invalid value {value:?} (expected 8 to 15)")),
    }
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

impl ExtensionConfig for DeflateConfig {
    fn name(&self) -> &str {
        NAME
    }

    fn offer(&self) -> ExtensionOffer {
        let server_bits = clamp_bits(self.server_max_window_bits);
        let client_bits = clamp_bits(self.client_max_window_bits);
        Params {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: (server_bits < MAX_WINDOW_BITS).then_some(server_bits),
            // Always present: we can honour any window the server asks for.
            client_max_window_bits: Some((client_bits < MAX_WINDOW_BITS).then_some(client_bits)),
        }
        .to_offer()
    }

    fn accept(&self, offer: &ExtensionOffer) -> Option<(ExtensionOffer, Box<dyn Extension>)> {
        let offered = Params::parse(offer, true).ok()?;
        let server_bits = clamp_bits(self.server_max_window_bits).min(offered.server_max_window_bits.unwrap_or(15));
        // Present when the client allows us to limit its window.
        let client_bits = offered
            .client_max_window_bits
            .map(|limit| clamp_bits(self.client_max_window_bits).min(limit.unwrap_or(15)));
        let response = Params {
            server_no_context_takeover: offered.server_no_context_takeover || self.server_no_context_takeover,
            client_no_context_takeover: offered.client_no_context_takeover || self.client_no_context_takeover,
            server_max_window_bits: (offered.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS)
                .then_some(server_bits),
            client_max_window_bits: client_bits.filter(|&b| b < MAX_WINDOW_BITS).map(Some),
        };
        let ext =
            Deflate::new(self, server_bits, response.server_no_context_takeover, response.client_no_context_takeover);
        Some((response.to_offer(), Box::new(ext)))
    }

    fn confirm(&self, response: &ExtensionOffer) -> Result<Box<dyn Extension>, HandshakeError> {
        let invalid = |msg: String| HandshakeError::InvalidExtension(format!("{NAME}: {msg}"));
        let answer = Params::parse(response, false).map_err(invalid)?;
        let ours = self.offer();
        let offered = Params::parse(&ours, true).map_err(invalid)?;
        if offered.server_no_context_takeover && !answer.server_no_context_takeover {
            return Err(invalid("server_no_context_takeover was requested but not confirmed".into()));
        }
        match (offered.server_max_window_bits, answer.server_max_window_bits) {
            (Some(_), None) => return Err(invalid("server_max_window_bits was requested but not confirmed".into())),
            (Some(asked), Some(got)) if got > asked => {
                return Err(invalid(format!("server_max_window_bits={got} exceeds the requested {asked}")));
            }
            _ => {}
        }
        let client_bits = match (offered.client_max_window_bits, answer.client_max_window_bits) {
            (_, None) => clamp_bits(self.client_max_window_bits),
            (None, Some(_)) => return Err(invalid("client_max_window_bits was not offered".into())),
            (Some(limit), Some(Some(bits))) => {
                if limit.is_some_and(|l| bits > l) {
                    return Err(invalid(format!("client_max_window_bits={bits} exceeds the offered limit")));
                }
                bits.min(clamp_bits(self.client_max_window_bits))
            }
            (Some(_), Some(None)) => return Err(invalid("client_max_window_bits needs a value".into())),
        };
        let reset_tx = answer.client_no_context_takeover || self.client_no_context_takeover;
        Ok(Box::new(Deflate::new(self, client_bits, reset_tx, answer.server_no_context_takeover)))
    }
}

/// The negotiated state of one connection: our compressor and the peer's
/// inflater, each created on first use.
pub struct Deflate {
    level: u32,
    threshold: usize,
    /// Window bits our compressor may use (8 means stored blocks only).
    tx_bits: u8,
    /// Reset the compressor after every message (no context takeover on our side).
    tx_reset: bool,
    /// Reset the inflater after every message (the peer uses no context takeover).
    rx_reset: bool,
    compress: Option<Compress>,
    decompress: Option<Decompress>,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("level", &self.level)
            .field("threshold", &self.threshold)
            .field("tx_bits", &self.tx_bits)
            .field("tx_reset", &self.tx_reset)
            .field("rx_reset", &self.rx_reset)
            .finish_non_exhaustive()
    }
}

impl Deflate {
    fn new(config: &DeflateConfig, tx_bits: u8, tx_reset: bool, rx_reset: bool) -> Self {
        Self {
            level: config.level.min(9),
            threshold: config.threshold,
            tx_bits: clamp_bits(tx_bits),
            tx_reset,
            rx_reset,
            compress: None,
            decompress: None,
        }
    }

    /// Whether our compressor resets after every message (no context takeover).
    pub fn resets_compressor(&self) -> bool {
        self.tx_reset
    }

    /// The LZ77 window bits our compressor may use.
    pub fn compress_window_bits(&self) -> u8 {
        self.tx_bits
    }

    fn compressor(&mut self) -> &mut Compress {
        let (level, bits) = match self.tx_bits {
            // zlib cannot deflate raw with an 8-bit window: store instead (module docs).
            8 => (Compression::none(), 9),
            bits => (Compression::new(self.level), bits),
        };
        self.compress.get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits))
    }

    /// Compresses `input` with a sync flush and strips the trailing empty block.
    fn deflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, flate2::CompressError> {
        let reset = self.tx_reset;
        let c = self.compressor();
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(1024));
            }
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::Sync)?;
            input = input.get((c.total_in() - before) as usize..).unwrap_or_default();
            // A sync flush is complete once it returns with output space left.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else if out.is_empty() {
            // zlib emits nothing for a sync flush with no new input after a
            // flush: an empty message is then the one byte 0x00, which with
            // the tail appended is an empty stored block (RFC 7692 §7.2.3.6).
            out.push(0x00);
        }
        if reset {
            c.reset();
        }
        Ok(out)
    }
}

impl Extension for Deflate {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn decode(&mut self, rsv: u8, payload: Bytes, max_size: usize) -> Result<Bytes, ProtocolError> {
        if rsv != RSV1 {
            return Err(ProtocolError::ReservedBits(rsv));
        }
        let d = self.decompress.get_or_insert_with(|| Decompress::new_with_window_bits(false, MAX_WINDOW_BITS));
        let mut out = Vec::new();
        let result = match inflate(d, &payload, &mut out, max_size) {
            Ok(false) => inflate(d, &TAIL, &mut out, max_size),
            other => other,
        };
        match result {
            Ok(ended) => {
                // A final block ends the stream: the next message starts a new one.
                if ended || self.rx_reset {
                    d.reset(false);
                }
                // The message may be kept by the application: do not let it
                // hold much more memory than its length.
                if out.capacity() - out.len() > out.len().max(4096) {
                    out.shrink_to_fit();
                }
                Ok(Bytes::from(out))
            }
            Err(e) => {
                d.reset(false);
                Err(e)
            }
        }
    }

    fn encode(&mut self, payload: Bytes) -> (u8, Bytes) {
        if payload.len() < self.threshold {
            return (0, payload);
        }
        match self.deflate(&payload) {
            Ok(compressed) => (RSV1, Bytes::from(compressed)),
            Err(_) => {
                // Unreachable with valid parameters; a fresh stream is always
                // safe for the peer, so reset and send this one uncompressed.
                if let Some(c) = self.compress.as_mut() {
                    c.reset();
                }
                (0, payload)
            }
        }
    }

    fn shared_encoding(&self) -> Option<u64> {
        if !self.tx_reset {
            return None;
        }
        let mut h = DefaultHasher::new();
        (NAME, self.level, self.threshold, self.tx_bits).hash(&mut h);
        Some(h.finish())
    }
}

/// Inflates `input` into `out`, never letting `out` grow past `max + 1`
/// bytes: output space is reserved step by step, so a small message that
/// inflates to gigabytes fails with [`ProtocolError::MessageTooLarge`] after
/// allocating at most the limit. `Ok(true)` when the stream ended (a final
/// block).
fn inflate(d: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<bool, ProtocolError> {
    let cap = max.saturating_add(1);
    loop {
        if out.len() == out.capacity() {
            if out.len() > max {
                return Err(ProtocolError::MessageTooLarge { size: out.len() as u64, limit: max });
            }
            let step = (input.len().saturating_mul(4)).max(out.len()).max(INFLATE_STEP);
            out.reserve_exact(step.min(cap - out.len()));
        }
        let (in_before, out_before) = (d.total_in(), out.len());
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|e| ProtocolError::Extension(format!("invalid deflate data: {e}")))?;
        input = input.get((d.total_in() - in_before) as usize..).unwrap_or_default();
        if out.len() > max {
            return Err(ProtocolError::MessageTooLarge { size: out.len() as u64, limit: max });
        }
        if status == Status::StreamEnd {
            // Bytes after a final block (padding, the tail) are ignored, as
            // zlib does; RFC 7692 §7.2.3.4's example has one.
            return Ok(true);
        }
        let room = out.len() < out.capacity();
        if input.is_empty() && room {
            return Ok(false);
        }
        if room && out.len() == out_before && d.total_in() == in_before {
            return Err(ProtocolError::Extension("deflate data made no progress".into()));
        }
    }
}

#[cfg(test)]
mod tests;
