//! Outgoing messages and pre-encoded frames.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::payload::Payload;
use crate::text::Text;

/// A message to send with [`Connection::send`](crate::Connection::send).
///
/// Payloads are [`Payload`]s: small ones inline, large ones [`Bytes`] that a
/// server sends as a frame header followed by the payload itself, no copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Payload),
    /// A Ping control frame (payload at most 125 bytes).
    Ping(Payload),
    /// An unsolicited Pong control frame (payload at most 125 bytes).
    Pong(Payload),
}

impl Message {
    /// A text message; takes `String`, `&str` or [`Text`].
    pub fn text(text: impl Into<Text>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message; takes `Vec<u8>`, `Bytes`, `&[u8]`, [`Payload`], ...
    pub fn binary(data: impl Into<Payload>) -> Self {
        Self::Binary(data.into())
    }

    pub(crate) fn into_parts(self) -> (OpCode, Payload) {
        match self {
            Self::Text(t) => (OpCode::Text, t.into_payload()),
            Self::Binary(b) => (OpCode::Binary, b),
            Self::Ping(b) => (OpCode::Ping, b),
            Self::Pong(b) => (OpCode::Pong, b),
        }
    }
}

/// A data message encoded once as unmasked server frames, to be sent to any
/// number of server connections with
/// [`Connection::send_encoded`](crate::Connection::send_encoded).
///
/// Server-to-client frames are not masked (RFC 6455 §5.1), so the same bytes
/// serve every recipient: a broadcast to N clients costs one encoding and N
/// reference-count increments.
///
/// With an extension such as permessage-deflate negotiated, a connection
/// whose extension encodes statelessly
/// ([`Extension::shared_encoding`](crate::extension::Extension::shared_encoding):
/// deflate with `server_no_context_takeover`) uses a compressed encoding
/// made once, by the first such connection, and cached here for all others
/// with the same parameters. A connection with context takeover compresses
/// the message itself, as it would any `send`: its compressor's state
/// depends on everything it sent before.
#[derive(Debug)]
pub struct EncodedMessage {
    plain: Frames,
    /// The message itself, for connections that encode it with an extension.
    message: Message,
    max_frame_size: usize,
    /// Encodings made by extensions, by [`shared_encoding`] key.
    ///
    /// [`shared_encoding`]: crate::extension::Extension::shared_encoding
    shared: Mutex<Vec<(u64, Arc<Frames>)>>,
}

/// Encoded frames: the header of the first frame, followed by the rest, kept
/// as parts so a large payload is never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frames {
    pub(crate) parts: Vec<Bytes>,
    pub(crate) len: usize,
}

impl Frames {
    /// Unmasked frames of at most `max_frame_size` payload bytes, RSV bits
    /// `rsv` on the first.
    pub(crate) fn new(opcode: OpCode, mut rsv: u8, payload: Payload, max_frame_size: usize) -> Self {
        let mut parts = Vec::new();
        let mut len = 0;
        for_each_frame(opcode, payload, max_frame_size, |mut header, chunk| {
            header.rsv = std::mem::take(&mut rsv);
            let mut buf = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut buf);
            len += n + chunk.len();
            if chunk.len() <= crate::connection::COPY_THRESHOLD {
                let mut b = Vec::with_capacity(n + chunk.len());
                b.extend_from_slice(&buf[..n]);
                b.extend_from_slice(&chunk);
                parts.push(Bytes::from(b));
            } else {
                parts.push(Bytes::copy_from_slice(&buf[..n]));
                parts.push(chunk.into_bytes());
            }
        });
        Self { parts, len }
    }
}

impl EncodedMessage {
    /// Encodes a text or binary `message` as server frames of at most
    /// `max_frame_size` payload bytes each (use the connections'
    /// `Config::max_send_frame_size`). Control messages are encoded as one frame.
    pub fn new(message: Message, max_frame_size: usize) -> Self {
        let (opcode, payload) = message.clone().into_parts();
        let plain = Frames::new(opcode, 0, payload, max_frame_size);
        Self { plain, message, max_frame_size, shared: Mutex::new(Vec::new()) }
    }

    /// Encoded length in bytes, without extensions.
    pub fn len(&self) -> usize {
        self.plain.len
    }

    /// Whether the encoding is empty (never: a frame has at least a header).
    pub fn is_empty(&self) -> bool {
        self.plain.len == 0
    }

    /// The message as given.
    pub fn message(&self) -> &Message {
        &self.message
    }

    pub(crate) fn plain(&self) -> &Frames {
        &self.plain
    }

    /// The frames encoded by an extension under `key`, encoding them with
    /// `encode` (payload in, RSV bits and payload out) the first time. The
    /// lock is held while encoding, so concurrent senders wait for the one
    /// encoding instead of repeating it.
    pub(crate) fn shared(&self, key: u64, encode: impl FnOnce(Bytes) -> (u8, Bytes)) -> Arc<Frames> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, frames)) = shared.iter().find(|(k, _)| *k == key) {
            return frames.clone();
        }
        let (opcode, payload) = self.message.clone().into_parts();
        let (rsv, encoded) = encode(payload.into_bytes());
        let frames = Arc::new(Frames::new(opcode, rsv, Payload::from(encoded), self.max_frame_size));
        shared.push((key, frames.clone()));
        frames
    }
}

impl Clone for EncodedMessage {
    fn clone(&self) -> Self {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Self {
            plain: self.plain.clone(),
            message: self.message.clone(),
            max_frame_size: self.max_frame_size,
            shared: Mutex::new(shared),
        }
    }
}

impl PartialEq for EncodedMessage {
    fn eq(&self, other: &Self) -> bool {
        self.plain == other.plain && self.message == other.message
    }
}

impl Eq for EncodedMessage {}

/// Splits a message into frames of at most `max` payload bytes (zero-copy
/// `Bytes::slice`), calling `f` with each unmasked header and payload.
#[inline]
pub(crate) fn for_each_frame(opcode: OpCode, payload: Payload, max: usize, mut f: impl FnMut(FrameHeader, Payload)) {
    let max = max.max(1);
    if opcode.is_control() || payload.len() <= max {
        let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: payload.len() as u64 };
        return f(header, payload);
    }
    let mut op = opcode;
    let mut rest = payload.into_bytes();
    while !rest.is_empty() {
        let chunk = rest.split_to(rest.len().min(max));
        let header =
            FrameHeader { fin: rest.is_empty(), rsv: 0, opcode: op, mask: None, payload_len: chunk.len() as u64 };
        f(header, Payload::from(chunk));
        op = OpCode::Continuation;
    }
}
