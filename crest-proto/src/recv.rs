//! The receive path: frames out of the read buffer, messages out of frames.
//!
//! This is where every received byte passes, so it is written for speed:
//! a complete unfragmented message is unmasked in place and split off the
//! read buffer as `Bytes` (no copy); a frame that arrives in pieces is
//! unmasked and UTF-8-checked piece by piece as it arrives (each byte is
//! touched once, and invalid text fails before the frame is complete);
//! every size is checked against its limit when the header announces it,
//! before anything is buffered. A caller can read the rest of a frame whose
//! header is decoded straight into `buf` (`Connection::input_buffer`, with
//! room reserved up to that checked length), so that a frame larger than
//! the caller's read block still ends up in one buffer without a copy.

use bytes::{Buf, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::error::ProtocolError;
use crate::event::Event;
use crate::extension::Extension;
use crate::frame::mask::{self, apply_mask, apply_mask_inline};
use crate::frame::{FrameHeader, OpCode};
use crate::payload::{Payload, INLINE_CAPACITY};
use crate::state::Role;
use crate::text::Text;
use crate::utf8::Validator;

/// What the connection lends the receiver for one `process` call.
pub(crate) struct Context<'a> {
    pub(crate) role: Role,
    pub(crate) config: &'a Config,
    pub(crate) extension: Option<&'a mut Box<dyn Extension>>,
}

/// Why processing stopped before the buffer was exhausted.
#[derive(Debug)]
pub(crate) enum Stop {
    /// A valid Close frame arrived; nothing after it is processed. Boxed:
    /// it happens once, and keeps the hot `Result` small.
    Close(Box<CloseFrame>),
    /// The peer broke the protocol.
    Error(ProtocolError),
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Fragmented {
    opcode: OpCode,
    rsv: u8,
    buf: BytesMut,
}

#[derive(Debug, Default)]
pub(crate) struct Receiver {
    /// Received bytes; those before `pos` are processed.
    pub(crate) buf: BytesMut,
    /// Read cursor: where the current frame's header starts in `buf`. Small
    /// messages are copied out and only move the cursor; `buf` is advanced
    /// past them once per batch (`compact`), not once per message.
    pos: usize,
    /// The current frame's header and header length, once decoded.
    frame: Option<(FrameHeader, usize)>,
    /// Payload bytes of the current frame already unmasked (and validated).
    done: usize,
    /// The fragmented message in progress.
    message: Option<Fragmented>,
    /// UTF-8 state of the text message in progress.
    utf8: Validator,
}

impl Receiver {
    /// Drops the buffer's hold on its memory block once everything in it is
    /// processed, so a quiet connection holds no read memory.
    pub(crate) fn release_if_empty(&mut self) {
        // Not `capacity() != 0`: an empty buffer split off the end of a
        // shared block has no capacity but still holds the whole block.
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// When every received byte was decoded and no frame is in progress,
    /// drops the buffer (as `next` would, after a failed decode and a
    /// compaction) and returns `true`: the common end of a batch, settled
    /// without the general path.
    #[inline(always)]
    pub(crate) fn release_if_drained(&mut self) -> bool {
        if self.pos == self.buf.len() && self.frame.is_none() {
            self.buf = BytesMut::new();
            self.pos = 0;
            return true;
        }
        false
    }

    /// Bytes still missing from the frame whose header was decoded; 0 when
    /// no header is decoded (none held, or only part of one).
    #[inline]
    pub(crate) fn frame_remaining(&self) -> usize {
        match self.frame {
            // check_header bounded the length by max_frame_size, a usize.
            Some((header, header_len)) => {
                let end = self.pos.saturating_add(header_len).saturating_add(header.payload_len as usize);
                end.saturating_sub(self.buf.len())
            }
            None => 0,
        }
    }

    /// Makes room in the buffer, right after the held bytes, for
    /// `min(reserve, frame_remaining())` more: the rest of the current frame
    /// then arrives next to its start and its payload is split off as is.
    ///
    /// When the buffer lacks that room (it is usually a piece split off the
    /// caller's read block, with no spare capacity), the held bytes are
    /// copied, once, into a new buffer of exactly the frame's size. So the
    /// reservation never exceeds the header plus the payload length that
    /// `check_header` admitted (at most `max_frame_size`, and within
    /// `max_message_size`): a header announcing 2^63 bytes fails that check
    /// and decodes no frame, so nothing is reserved for it. What is reserved
    /// is not written until bytes arrive: the allocator hands out large
    /// blocks as untouched pages.
    pub(crate) fn reserve_frame(&mut self, reserve: usize) {
        let want = reserve.min(self.frame_remaining());
        if self.buf.capacity() - self.buf.len() >= want {
            return;
        }
        self.compact();
        let mut buf = BytesMut::with_capacity(self.buf.len() + want);
        buf.extend_from_slice(&self.buf);
        self.buf = buf;
    }

    /// Received bytes held: unprocessed input plus the fragmented message
    /// being reassembled.
    pub(crate) fn held(&self) -> usize {
        self.buf.len() + self.message.as_ref().map_or(0, |m| m.buf.len())
    }

    /// Decodes frames from the buffer until one yields an event (a complete
    /// message, a Ping or a Pong), the buffer runs out (`Ok(None)`), or the
    /// connection must stop. Called on demand by `poll_event`: no queue of
    /// events is ever built, and each frame is decoded while its bytes are
    /// still in cache.
    #[inline]
    pub(crate) fn next(&mut self, mut ctx: Context<'_>) -> Result<Option<Event>, Stop> {
        if let Some(result) = self.next_short(&ctx) {
            return result.map(Some);
        }
        let result = self.next_event(&mut ctx);
        if !matches!(result, Ok(Some(_))) {
            self.compact();
        }
        result
    }

    /// The fast path for the most common frame: complete in the buffer,
    /// unfragmented (FIN, no message in progress), text or binary, no RSV
    /// bits, at most 65,535 bytes (a 7-bit or 16-bit length), masked as our
    /// role requires, within the size limits. For such a frame every rule of
    /// `check_header` holds by construction, so this only decodes; any other
    /// frame, every violation included, returns `None` here untouched and
    /// takes the general path. The chunking-invariance property tests compare
    /// the two (whole input takes this path, byte-at-a-time input the other).
    #[inline(always)]
    pub(crate) fn next_short(&mut self, ctx: &Context<'_>) -> Option<Result<Event, Stop>> {
        if self.frame.is_some() || self.message.is_some() {
            return None;
        }
        let buf = self.buf.get_mut(self.pos..)?;
        let [b0, b1, ..] = *buf else {
            return None;
        };
        let text = match b0 {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        // The 7-bit length, or the 16-bit one that follows 126 (messages of
        // 126 B to 64 KiB: JSON, mostly); the 64-bit form takes the general
        // path.
        let (len, ext) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(&[l0, l1]) => (usize::from(u16::from_be_bytes([l0, l1])), 2),
                _ => return None,
            },
            127 => return None,
            n => (usize::from(n), 0),
        };
        let masked = b1 & 0x80 != 0;
        if masked != (ctx.role == Role::Server) {
            return None;
        }
        if len > ctx.config.max_frame_size || len > ctx.config.max_message_size {
            return None;
        }
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < header_len + len {
            return None;
        }
        let key_at = header_len.saturating_sub(4); // used only when masked
        if len <= INLINE_CAPACITY {
            let key = match buf.get(key_at..header_len) {
                Some(&[k0, k1, k2, k3]) if masked => [k0, k1, k2, k3],
                _ => [0; 4],
            };
            let (block, ascii) = short_block(&buf[header_len..], len, key);
            if text && !ascii && !block_is_utf8(&block, len) {
                return Some(Err(Stop::Error(ProtocolError::InvalidUtf8)));
            }
            self.pos += header_len + len;
            let payload = Payload::from_block(block, len);
            return Some(Ok(if text { Event::Text(Text::from_validated(payload)) } else { Event::Binary(payload) }));
        }
        let (head, rest) = buf.split_at_mut(header_len);
        let rest = &mut rest[..len];
        if masked {
            let key = [head[key_at], head[key_at + 1], head[key_at + 2], head[key_at + 3]];
            if ext == 0 {
                apply_mask_inline(rest, key, 0);
            } else {
                apply_mask(rest, key, 0); // wide enough for the AVX2 path
            }
        }
        if text && !short_is_utf8(rest) {
            return Some(Err(Stop::Error(ProtocolError::InvalidUtf8)));
        }
        self.buf.advance(self.pos + header_len);
        self.pos = 0;
        let payload = Payload::shared(self.buf.split_to(len).freeze());
        Some(Ok(if text { Event::Text(Text::from_validated(payload)) } else { Event::Binary(payload) }))
    }

    /// Drops the processed bytes from the front of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.advance(self.pos);
            self.pos = 0;
        }
    }

    #[inline]
    fn next_event(&mut self, ctx: &mut Context<'_>) -> Result<Option<Event>, Stop> {
        loop {
            let (header, header_len) = match self.frame {
                Some(frame) => frame,
                None => match FrameHeader::decode(&self.buf[self.pos..]) {
                    Ok(Some(frame)) => {
                        self.check_header(&frame.0, ctx).map_err(Stop::Error)?;
                        self.frame = Some(frame);
                        self.done = 0;
                        frame
                    }
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(Stop::Error(e)),
                },
            };
            // check_header bounded the length by max_frame_size, a usize.
            let len = header.payload_len as usize;
            let start = self.pos + header_len;
            let available = (self.buf.len() - start).min(len);
            // A whole unfragmented text frame is validated in one SIMD pass
            // below; anything else is validated incrementally as it arrives.
            let whole_text = header.fin && header.opcode == OpCode::Text && self.done == 0 && available == len;
            if available > self.done {
                let validate = !whole_text && self.is_plain_text(&header);
                let fresh = &mut self.buf[start + self.done..start + available];
                if let Some(key) = header.mask {
                    apply_mask(fresh, key, self.done);
                }
                if validate && self.utf8.feed(fresh).is_err() {
                    return Err(Stop::Error(ProtocolError::InvalidUtf8));
                }
                self.done = available;
            }
            if available < len {
                return Ok(None);
            }
            let payload = if len <= INLINE_CAPACITY {
                self.pos = start + len;
                Payload::inline_prefix(&self.buf[start..], len)
            } else {
                self.buf.advance(start);
                self.pos = 0;
                Payload::shared(self.buf.split_to(len).freeze())
            };
            self.frame = None;
            if let Some(event) = self.on_frame(header, payload, whole_text, ctx)? {
                return Ok(Some(event));
            }
        }
    }

    /// The checks that need context (RFC 6455 §5.1-§5.4) and the size limits.
    fn check_header(&self, h: &FrameHeader, ctx: &Context<'_>) -> Result<(), ProtocolError> {
        match (ctx.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let allowed = match h.opcode {
            OpCode::Text | OpCode::Binary => ctx.extension.as_ref().map_or(0, |e| e.rsv_bits()),
            _ => 0,
        };
        if h.rsv & !allowed != 0 {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        let limits = ctx.config;
        if h.payload_len > limits.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge { size: h.payload_len, limit: limits.max_frame_size });
        }
        let message_size = match (h.opcode, &self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(m)) => m.buf.len() as u64 + h.payload_len,
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (OpCode::Text | OpCode::Binary, None) => h.payload_len,
            _ => 0,
        };
        if message_size > limits.max_message_size as u64 {
            return Err(ProtocolError::MessageTooLarge { size: message_size, limit: limits.max_message_size });
        }
        Ok(())
    }

    /// Whether the current frame carries uncompressed text, validated as it arrives.
    fn is_plain_text(&self, h: &FrameHeader) -> bool {
        match h.opcode {
            OpCode::Text => h.rsv == 0,
            OpCode::Continuation => self.message.as_ref().is_some_and(|m| m.opcode == OpCode::Text && m.rsv == 0),
            _ => false,
        }
    }

    #[inline]
    fn on_frame(
        &mut self,
        header: FrameHeader,
        payload: Payload,
        whole_text: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Option<Event>, Stop> {
        match header.opcode {
            OpCode::Text | OpCode::Binary if header.fin => {
                return self.deliver(header.opcode, header.rsv, payload, whole_text, ctx).map(Some);
            }
            OpCode::Text | OpCode::Binary => {
                let buf = BytesMut::from(&payload[..]);
                self.message = Some(Fragmented { opcode: header.opcode, rsv: header.rsv, buf });
            }
            OpCode::Continuation => {
                let Some(message) = self.message.as_mut() else {
                    return Err(Stop::Error(ProtocolError::UnexpectedContinuation));
                };
                message.buf.extend_from_slice(&payload);
                if header.fin {
                    if let Some(Fragmented { opcode, rsv, buf }) = self.message.take() {
                        return self.deliver(opcode, rsv, Payload::from(buf.freeze()), false, ctx).map(Some);
                    }
                }
            }
            OpCode::Ping => return Ok(Some(Event::Ping(payload))),
            OpCode::Pong => return Ok(Some(Event::Pong(payload))),
            OpCode::Close => {
                return Err(match parse_close(payload) {
                    Ok(frame) => Stop::Close(Box::new(frame)),
                    Err(e) => Stop::Error(e),
                })
            }
        }
        Ok(None)
    }

    #[inline]
    fn deliver(
        &mut self,
        opcode: OpCode,
        rsv: u8,
        payload: Payload,
        whole_text: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Event, Stop> {
        let payload = match (rsv, ctx.extension.as_mut()) {
            (0, _) => payload,
            (_, Some(ext)) => {
                let max = ctx.config.max_message_size;
                Payload::from(ext.as_mut().decode(rsv, payload.into_bytes(), max).map_err(Stop::Error)?)
            }
            // check_header admits RSV bits only with an extension.
            (_, None) => return Err(Stop::Error(ProtocolError::ReservedBits(rsv))),
        };
        if opcode == OpCode::Binary {
            return Ok(Event::Binary(payload));
        }
        let valid = if whole_text || rsv != 0 {
            simdutf8::basic::from_utf8(&payload).is_ok()
        } else {
            self.utf8.finish().is_ok()
        };
        if !valid {
            return Err(Stop::Error(ProtocolError::InvalidUtf8));
        }
        Ok(Event::Text(Text::from_validated(payload)))
    }
}

/// The payload of a short frame (at most [`INLINE_CAPACITY`] bytes; `src`
/// starts at the payload and holds at least `len` bytes) as a fixed-size
/// block, unmasked with `key` (zero for an unmasked frame), the bytes past
/// `len` zeroed, and whether it is all ASCII.
///
/// Everything here is of fixed size: three word loads (the frame is usually
/// followed by more input, so 24 bytes can be read), XORs with the key, ANDs
/// with the mask of the first `len` bytes from a table. No `memcpy` call, no
/// loop, no write to the read buffer (its copy of the payload is never read
/// again).
#[inline(always)]
fn short_block(src: &[u8], len: usize, key: [u8; 4]) -> ([u8; INLINE_CAPACITY], bool) {
    let bytes = match src.first_chunk::<BLOCK>() {
        Some(bytes) => *bytes,
        None => pad_block(src),
    };
    let keep = PREFIX_MASKS.get(len).copied().unwrap_or_default();
    // Every word starts at a payload offset divisible by 4: the key's phase is 0.
    let k = mask::key_word(key);
    let words: [u64; 3] = std::array::from_fn(|i| {
        let word: [u8; 8] = std::array::from_fn(|j| bytes[8 * i + j]);
        (u64::from_le_bytes(word) ^ k) & keep[i]
    });
    let ascii = (words[0] | words[1] | words[2]) & 0x8080_8080_8080_8080 == 0;
    let mut block = [0u8; INLINE_CAPACITY];
    for (chunk, word) in block.chunks_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
    (block, ascii)
}

/// Bytes [`short_block`] reads: [`INLINE_CAPACITY`] rounded up to whole words.
const BLOCK: usize = INLINE_CAPACITY.next_multiple_of(8);

/// `PREFIX_MASKS[n]`: the three little-endian words whose first `n` bytes are
/// 0xFF and the rest zero.
const PREFIX_MASKS: [[u64; BLOCK / 8]; INLINE_CAPACITY + 1] = {
    let mut masks = [[0u64; BLOCK / 8]; INLINE_CAPACITY + 1];
    let mut n = 0;
    while n <= INLINE_CAPACITY {
        let mut i = 0;
        while i < n {
            masks[n][i / 8] |= 0xFF << (8 * (i % 8));
            i += 1;
        }
        n += 1;
    }
    masks
};

/// [`short_block`]'s input when fewer than 24 bytes follow the header (the
/// last frame of the input), zero-padded; out of line so that the common
/// case stays a fixed-size load.
#[cold]
#[inline(never)]
fn pad_block(src: &[u8]) -> [u8; BLOCK] {
    let mut words = [0u8; BLOCK];
    let n = src.len().min(BLOCK);
    words[..n].copy_from_slice(&src[..n]);
    words
}

/// The full UTF-8 check of a short text payload that is not all ASCII; out
/// of line so that the ASCII path stays small.
#[inline(never)]
fn block_is_utf8(block: &[u8; INLINE_CAPACITY], len: usize) -> bool {
    block.get(..len).is_some_and(|b| std::str::from_utf8(b).is_ok())
}

/// UTF-8 check for a short payload: an ASCII scan the compiler vectorises,
/// falling back to the full check for anything else.
#[inline]
fn short_is_utf8(bytes: &[u8]) -> bool {
    if bytes.len() > 125 {
        return simdutf8::basic::from_utf8(bytes).is_ok();
    }
    let (words, rest) = bytes.as_chunks::<8>();
    let high = words.iter().fold(0u64, |acc, w| acc | u64::from_ne_bytes(*w)) & 0x8080_8080_8080_8080;
    let ascii = high == 0 && rest.iter().all(|b| b.is_ascii());
    ascii || std::str::from_utf8(bytes).is_ok()
}

/// Parses a Close frame body (RFC 6455 §5.5.1, §7.4).
fn parse_close(payload: Payload) -> Result<CloseFrame, ProtocolError> {
    match *payload {
        [] => Ok(CloseFrame::new(CloseCode::NO_STATUS_RECEIVED, Text::default())),
        [_] => Err(ProtocolError::InvalidCloseBody),
        [hi, lo, ..] => {
            let code = CloseCode(u16::from_be_bytes([hi, lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = Payload::copy_from_slice(&payload[2..]);
            if simdutf8::basic::from_utf8(&reason).is_err() {
                return Err(ProtocolError::InvalidCloseReason);
            }
            Ok(CloseFrame { code, reason: Text::from_validated(reason) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::mask::apply_mask_reference;

    /// Every short length, with and without a key, with no byte after the
    /// payload (the padded path) and with more (the fixed-size load): the
    /// block holds the unmasked payload, zeros after it, and `ascii` says
    /// whether the payload (only the payload) is ASCII.
    #[test]
    fn short_block_equals_reference_unmasking() {
        for len in 0..=INLINE_CAPACITY {
            for key in [[0; 4], [0x37, 0xfa, 0x21, 0x3d], [0xff; 4]] {
                for after in [0, 1, 2, 8, 30] {
                    for high in [None, Some(0), Some(len.saturating_sub(1))] {
                        let mut plain: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                        if let Some(i) = high.filter(|_| len > 0) {
                            plain[i] = 0xC3;
                        }
                        let mut wire = plain.clone();
                        apply_mask_reference(&mut wire, key, 0);
                        // What follows the payload: non-ASCII, to catch a check that reads too far.
                        wire.extend(std::iter::repeat_n(0x81, after));
                        let (block, ascii) = short_block(&wire, len, key);
                        assert_eq!(&block[..len], &plain[..], "len {len} key {key:?} after {after}");
                        assert!(block[len..].iter().all(|&b| b == 0), "len {len}: bytes past the payload are zero");
                        assert_eq!(ascii, plain.is_ascii(), "len {len} key {key:?} after {after} high {high:?}");
                    }
                }
            }
        }
    }
}
