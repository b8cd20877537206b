//! The receive path: frames out of the read buffer, messages out of frames.
//!
//! This is where every received byte passes, so it is written for speed:
//! a complete unfragmented message is unmasked in place and split off the
//! read buffer as `Bytes` (no copy); a frame that arrives in pieces is
//! unmasked and UTF-8-checked piece by piece as it arrives (each byte is
//! touched once, and invalid text fails before the frame is complete);
//! every size is checked against its limit when the header announces it,
//! before anything is buffered.

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::error::ProtocolError;
use crate::event::Event;
use crate::extension::Extension;
use crate::frame::{mask::apply_mask, FrameHeader, OpCode};
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
    /// A valid Close frame arrived; nothing after it is processed.
    Close(CloseFrame),
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
    /// Unprocessed bytes, starting at the current frame's header.
    pub(crate) buf: BytesMut,
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
        if self.buf.is_empty() && self.buf.capacity() != 0 {
            self.buf = BytesMut::new();
        }
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
    pub(crate) fn next(&mut self, mut ctx: Context<'_>) -> Result<Option<Event>, Stop> {
        loop {
            let (header, header_len) = match self.frame {
                Some(frame) => frame,
                None => match FrameHeader::decode(&self.buf) {
                    Ok(Some(frame)) => {
                        self.check_header(&frame.0, &ctx).map_err(Stop::Error)?;
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
            let available = (self.buf.len() - header_len).min(len);
            // A whole unfragmented text frame is validated in one SIMD pass
            // below; anything else is validated incrementally as it arrives.
            let whole_text = header.fin && header.opcode == OpCode::Text && self.done == 0 && available == len;
            if available > self.done {
                let validate = !whole_text && self.is_plain_text(&header);
                let fresh = &mut self.buf[header_len + self.done..header_len + available];
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
            self.buf.advance(header_len);
            let payload = self.buf.split_to(len).freeze();
            self.frame = None;
            if let Some(event) = self.on_frame(header, payload, whole_text, &mut ctx)? {
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

    fn on_frame(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
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
                        return self.deliver(opcode, rsv, buf.freeze(), false, ctx).map(Some);
                    }
                }
            }
            OpCode::Ping => return Ok(Some(Event::Ping(payload))),
            OpCode::Pong => return Ok(Some(Event::Pong(payload))),
            OpCode::Close => {
                return Err(match parse_close(payload) {
                    Ok(frame) => Stop::Close(frame),
                    Err(e) => Stop::Error(e),
                })
            }
        }
        Ok(None)
    }

    fn deliver(
        &mut self,
        opcode: OpCode,
        rsv: u8,
        payload: Bytes,
        whole_text: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Event, Stop> {
        let payload = match (rsv, ctx.extension.as_mut()) {
            (0, _) => payload,
            (_, Some(ext)) => ext.as_mut().decode(rsv, payload, ctx.config.max_message_size).map_err(Stop::Error)?,
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

/// Parses a Close frame body (RFC 6455 §5.5.1, §7.4).
fn parse_close(payload: Bytes) -> Result<CloseFrame, ProtocolError> {
    match *payload {
        [] => Ok(CloseFrame::new(CloseCode::NO_STATUS_RECEIVED, Text::default())),
        [_] => Err(ProtocolError::InvalidCloseBody),
        [hi, lo, ..] => {
            let code = CloseCode(u16::from_be_bytes([hi, lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = payload.slice(2..);
            if simdutf8::basic::from_utf8(&reason).is_err() {
                return Err(ProtocolError::InvalidCloseReason);
            }
            Ok(CloseFrame { code, reason: Text::from_validated(reason) })
        }
    }
}
