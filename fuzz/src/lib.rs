//! The bodies of crest-proto's fuzz targets, and what they share.
//!
//! Each binary in `fuzz_targets/` states its invariant in its first comment
//! and calls one function here. Keeping the bodies in a library lets
//! `cargo test` in this directory (stable toolchain, no sanitizer) replay the
//! checked-in seed corpora, and any crash file, through exactly the code the
//! fuzzers run: see `tests` at the bottom and `README.md`.
//!
//! Shared pieces: the small limits the stream targets run with
//! ([`stream_config`]), how a stream input is cut into chunks
//! ([`StreamInput`]), and `x-fuzz` ([`XFuzzConfig`]), a toy extension that
//! lets the fuzzer reach the RSV-bit and extension paths before
//! permessage-deflate exists.

use std::sync::Arc;

use crest_proto::extension::{Extension, ExtensionConfig, ExtensionOffer};
use crest_proto::frame::RSV1;
use crest_proto::{Bytes, ClientRequest, Config, Connection, Event, HandshakeError, ProtocolError};

pub mod codec;
pub mod handshake;
pub mod inflate;
pub mod roundtrip;
pub mod stream;

/// The nonce of RFC 6455 §1.3 ("the sample nonce"), so that the accept value
/// a client expects is known and can sit in the dictionary and the seeds.
pub const SAMPLE_NONCE: [u8; 16] = *b"the sample nonce";
/// `Sec-WebSocket-Key` for [`SAMPLE_NONCE`].
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`SAMPLE_KEY`] (RFC 6455 §1.3).
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The request every fuzzed client sends: RFC 6455 §1.3's, with its nonce.
pub fn client_request() -> ClientRequest {
    ClientRequest::new("server.example.com", "/chat").protocol("chat").protocol("superchat").key(SAMPLE_NONCE)
}

/// Bits of a stream input's first byte (see [`StreamInput`]).
pub mod flags {
    /// End the input with `receive_eof`.
    pub const EOF: u8 = 0x01;
    /// The chunked run hands over pieces split from one `BytesMut` with
    /// `receive_bytes` (the zero-copy path) instead of `receive`, or, while
    /// a frame's header is known, appends them to `input_buffer` and calls
    /// `receive_appended`.
    pub const BYTES: u8 = 0x02;
    /// Configure the `x-fuzz` extension (offered by a client, accepted by a server).
    pub const EXTENSION: u8 = 0x04;
    /// Turn `auto_pong` off.
    pub const NO_AUTO_PONG: u8 = 0x08;
    /// Bits 4-6: log2 of the largest chunk of the chunked run (1 to 128 bytes).
    pub const CHUNK_SHIFT: u8 = 4;
    /// Tiny limits instead of small ones.
    pub const TINY: u8 = 0x80;
}

/// A stream target's input: `[flags][chunk seed][wire bytes...]`.
///
/// The wire bytes are what the peer sends, handshake included. The chunked
/// run cuts them into pieces of 1 to `max_chunk` bytes drawn from a PRNG
/// seeded with the second byte; flags are the bits in [`flags`].
#[derive(Debug, Clone, Copy)]
pub struct StreamInput<'a> {
    /// The [`flags`] bits.
    pub flags: u8,
    /// Seed for the chunk sizes.
    pub seed: u8,
    /// The peer's bytes.
    pub wire: &'a [u8],
}

impl<'a> StreamInput<'a> {
    /// Splits off the two leading bytes; `None` for shorter inputs.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let [flags, seed, wire @ ..] = data else {
            return None;
        };
        Some(Self { flags: *flags, seed: *seed, wire })
    }

    /// Whether flag `bit` is set.
    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// The largest piece of the chunked run.
    pub fn max_chunk(&self) -> usize {
        1 << ((self.flags >> flags::CHUNK_SHIFT) & 7)
    }

    /// Piece sizes covering the wire bytes, each 1 to `max_chunk`.
    pub fn chunk_sizes(&self) -> Vec<usize> {
        chunk_sizes(self.seed, self.max_chunk(), self.wire.len())
    }
}

/// Sizes of 1 to `max` bytes adding up to `total`, from a PRNG seeded by `seed`.
pub fn chunk_sizes(seed: u8, max: usize, total: usize) -> Vec<usize> {
    let mut state = u64::from(seed);
    let mut left = total;
    let mut sizes = Vec::new();
    while left > 0 {
        let n = (1 + splitmix64(&mut state) % max as u64) as usize;
        let n = n.min(left);
        sizes.push(n);
        left -= n;
    }
    sizes
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Small limits, so that the fuzzer reaches every limit with short inputs.
pub fn stream_config(flag_bits: u8) -> Config {
    let mut c = Config::default();
    if flag_bits & flags::TINY != 0 {
        c.max_handshake_size = 320;
        c.max_headers = 10;
        c.max_frame_size = 16;
        c.max_message_size = 40;
    } else {
        c.max_handshake_size = 1024;
        c.max_headers = 16;
        c.max_frame_size = 256;
        c.max_message_size = 1024;
    }
    c.auto_pong = flag_bits & flags::NO_AUTO_PONG == 0;
    c.rng_seed = Some(0x5EED);
    if flag_bits & flags::EXTENSION != 0 {
        c.extensions = vec![Arc::new(XFuzzConfig)];
    }
    c
}

/// Every event `conn` has, in order.
pub fn drain(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Whether `buf` holds the end of an HTTP head: a blank line, `\n\n` or
/// `\n\r\n` (the reference for crest-proto's incremental scanner).
/// Whether `buf` may still begin an HTTP request: after any leading CR/LF,
/// its first 32 bytes open with a method token (RFC 9110 tchars up to the
/// first space). The server answers 400 at once to bytes that cannot.
pub fn may_start_request(buf: &[u8]) -> bool {
    let start = &buf[..buf.len().min(32)];
    let start: Vec<u8> = start.iter().copied().skip_while(|b| *b == b'\r' || *b == b'\n').collect();
    let method = start.split(|&b| b == b' ').next().unwrap_or_default();
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    start.is_empty() || (!method.is_empty() && method.iter().all(tchar))
}

pub fn has_head_end(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(3).any(|w| w == b"\n\r\n")
}

/// The status code of an HTTP/1.1 response head at the start of `out`.
pub fn response_status(out: &[u8]) -> Option<u16> {
    let rest = out.strip_prefix(b"HTTP/1.1 ")?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    (rest.get(3) == Some(&b' ')).then_some(code)
}

/// Index just past the first `\r\n\r\n` in `buf`.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// `x-fuzz`: a toy extension negotiated without parameters. Under RSV1 a
/// message is run-length coded as `(count, byte)` pairs, so decoding expands
/// up to 127 times, as a decompressor would, and must respect `max_size`.
#[derive(Debug)]
pub struct XFuzzConfig;

impl ExtensionConfig for XFuzzConfig {
    fn name(&self) -> &str {
        "x-fuzz"
    }

    fn offer(&self) -> ExtensionOffer {
        ExtensionOffer { name: "x-fuzz".into(), params: Vec::new() }
    }

    fn accept(&self, offer: &ExtensionOffer) -> Option<(ExtensionOffer, Box<dyn Extension>)> {
        offer.params.is_empty().then(|| (self.offer(), Box::new(XFuzz) as Box<dyn Extension>))
    }

    fn confirm(&self, response: &ExtensionOffer) -> Result<Box<dyn Extension>, HandshakeError> {
        if response.params.is_empty() {
            Ok(Box::new(XFuzz))
        } else {
            Err(HandshakeError::InvalidExtension("x-fuzz takes no parameters".into()))
        }
    }
}

/// The negotiated `x-fuzz` state (none: run-length coding is stateless).
#[derive(Debug)]
pub struct XFuzz;

impl Extension for XFuzz {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn decode(&mut self, _rsv: u8, payload: Bytes, max_size: usize) -> Result<Bytes, ProtocolError> {
        if !payload.len().is_multiple_of(2) {
            return Err(ProtocolError::Extension("x-fuzz: odd run-length payload".into()));
        }
        let mut out = Vec::new();
        for pair in payload.chunks_exact(2) {
            let size = out.len() + usize::from(pair[0]);
            if size > max_size {
                return Err(ProtocolError::MessageTooLarge { size: size as u64, limit: max_size });
            }
            out.resize(size, pair[1]);
        }
        Ok(out.into())
    }

    fn encode(&mut self, payload: Bytes) -> (u8, Bytes) {
        let mut out = Vec::new();
        for run in payload.chunk_by(|a, b| a == b) {
            for piece in run.chunks(255) {
                out.extend_from_slice(&[piece.len() as u8, piece[0]]);
            }
        }
        (RSV1, out.into())
    }
}

#[cfg(test)]
mod tests {
    //! Replays the seed corpora (and any crash files under `artifacts/`)
    //! through the fuzz target bodies, on the stable toolchain.

    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut count = 0;
        for dir in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_file() {
                    eprintln!("{target}: {}", path.display());
                    run(&std::fs::read(&path).unwrap());
                    count += 1;
                }
            }
        }
        assert!(count > 0, "no seeds for {target}");
    }

    #[test]
    fn frame_decode_seeds() {
        replay("frame_decode", super::codec::frame_decode);
    }

    #[test]
    fn mask_seeds() {
        replay("mask", super::codec::mask);
    }

    #[test]
    fn utf8_seeds() {
        replay("utf8", super::codec::utf8);
    }

    #[test]
    fn server_stream_seeds() {
        replay("server_stream", super::stream::server_stream);
    }

    #[test]
    fn client_stream_seeds() {
        replay("client_stream", super::stream::client_stream);
    }

    #[test]
    fn handshake_request_seeds() {
        replay("handshake_request", super::handshake::request);
    }

    #[test]
    fn handshake_response_seeds() {
        replay("handshake_response", super::handshake::response);
    }

    #[test]
    fn inflate_seeds() {
        replay("inflate", super::inflate::inflate);
    }

    #[test]
    fn roundtrip_seeds() {
        replay("roundtrip", super::roundtrip::roundtrip);
    }

    #[test]
    fn chunk_sizes_cover_the_input() {
        for max in [1, 2, 7, 128] {
            let sizes = super::chunk_sizes(3, max, 1000);
            assert_eq!(sizes.iter().sum::<usize>(), 1000);
            assert!(sizes.iter().all(|&n| (1..=max).contains(&n)));
        }
    }
}
